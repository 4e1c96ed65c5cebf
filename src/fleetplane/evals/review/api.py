"""The review queue and user feedback over HTTP, under the admin API (loopback or the admin token):

    GET  /admin/evals/review/items?status=open&limit=50   the queue
    POST /admin/evals/review/next        {"reviewer": "ana"}                      -> the item assigned
    POST /admin/evals/review/items/{id}/labels {"reviewer", "labels": {dim: 0..1}, "comment"}
    GET  /admin/evals/review/agreement   agreement of each scorer with the human labels
    POST /admin/evals/feedback           {"trace_id", "value": 0..1, "comment"}   user feedback

Errors are `{"error": {"message", "type": "invalid_request_error"}}` with 400 (404 for an unknown item).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetplane.evals.online.items import OnlineItems
from fleetplane.evals.review.calibration import agreement
from fleetplane.evals.review.queue import ReviewError, ReviewQueue
from fleetplane.store.db import Store

PREFIX = "/admin/evals"
_HEX = frozenset("0123456789abcdefABCDEF")


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def _error(message: str, status: int = 400) -> Response:
    return _json({"error": {"message": message, "type": "invalid_request_error"}}, status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise ReviewError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise ReviewError("the body must be a JSON object")
    return data


def review_routes(store: Store, clock: Callable[[], float] = time.time) -> list[Route]:
    queue = ReviewQueue(store)

    async def items(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "50"))
            found = await queue.items(status=request.query_params.get("status"), limit=max(1, limit))
        except ValueError as exc:
            return _error(str(exc) if isinstance(exc, ReviewError) else "limit must be a whole number")
        return _json({"items": [i.as_json() for i in found]})

    async def next_item(request: Request) -> Response:
        try:
            body = await _body(request)
            reviewer = body.get("reviewer")
            if not isinstance(reviewer, str):
                raise ReviewError("'reviewer' (a name) is required")
            item = await queue.next(reviewer, clock())
        except ReviewError as exc:
            return _error(str(exc))
        return _json({"item": item.as_json() if item else None})

    async def label(request: Request) -> Response:
        item_id = request.path_params["item_id"]
        try:
            body = await _body(request)
            reviewer, labels = body.get("reviewer"), body.get("labels")
            if not isinstance(reviewer, str) or not reviewer.strip():
                raise ReviewError("'reviewer' (a name) is required")
            if not isinstance(labels, dict):
                raise ReviewError("'labels' must be an object of dimension: value in [0, 1]")
            comment = body.get("comment")
            item = await queue.label(
                item_id, reviewer, labels, comment=comment if isinstance(comment, str) else None, now=clock()
            )
        except ReviewError as exc:
            return _error(str(exc), 404 if str(exc).startswith("no review item") else 400)
        return _json({"item": item.as_json()})

    async def rates(_: Request) -> Response:
        return _json({"agreement": [a.as_json() for a in await agreement(store)]})

    async def feedback(request: Request) -> Response:
        try:
            body = await _body(request)
            trace_id, value = body.get("trace_id"), body.get("value")
            if not isinstance(trace_id, str) or len(trace_id) != 32 or not _HEX.issuperset(trace_id):
                raise ReviewError("'trace_id' must be the 32 hex digits of a trace id")
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ReviewError("'value' must be a number in [0, 1] (0 = bad answer, 1 = good)")
            comment = body.get("comment")
            flagged = await OnlineItems(store).add_feedback(
                trace_id.lower(), float(value), comment if isinstance(comment, str) else None, clock()
            )
        except ReviewError as exc:
            return _error(str(exc))
        return _json({"recorded": True, "flagged": flagged})

    return [
        Route(f"{PREFIX}/review/items", items, methods=["GET"]),
        Route(f"{PREFIX}/review/next", next_item, methods=["POST"]),
        Route(f"{PREFIX}/review/items/{{item_id}}/labels", label, methods=["POST"]),
        Route(f"{PREFIX}/review/agreement", rates, methods=["GET"]),
        Route(f"{PREFIX}/feedback", feedback, methods=["POST"]),
    ]
