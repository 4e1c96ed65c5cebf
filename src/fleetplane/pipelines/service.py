"""The HTTP side of pipelines, mounted by the server: the webhook trigger, the runs and approvals API, and
the lifecycle of the server's worker and scheduler.

- `POST /pipelines/{name}/trigger` — the body is the run's input. Every webhook run has a dedupe key:
  from where the pipeline says (`trigger.webhook.dedupe`), else the `Idempotency-Key` header; a request
  without one is refused, so a retried delivery never starts a second run. 202 for a new run, 200 with
  the existing run for a repeated key.
- `/admin/pipelines/runs[/{id}[/resume|/cancel]]`, `/admin/pipelines/approvals[/{id}/approve|/reject]` —
  behind the server's admin guard.

Errors are `{"error": {"message", "type"}}` with the status saying what kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetplane.manifests.errors import ManifestErrors
from fleetplane.manifests.expression_templates import compile_condition
from fleetplane.manifests.expressions import ExprError
from fleetplane.manifests.secrets import SecretUnavailable, read_secret
from fleetplane.pipelines.approvals import STATUSES as APPROVAL_STATUSES
from fleetplane.pipelines.approvals import ApprovalError, ApprovalInvalid, Approvals
from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.control import ControlError, cancel, resume, show
from fleetplane.pipelines.engine import start_run
from fleetplane.pipelines.gateway import GatewayClient
from fleetplane.pipelines.outcomes import StartError
from fleetplane.pipelines.plan import Plan
from fleetplane.pipelines.runs import STATUSES as RUN_STATUSES
from fleetplane.pipelines.runs import RunRecord, RunStore
from fleetplane.pipelines.runtime import find_plan, make_deps
from fleetplane.pipelines.schedule import Scheduler
from fleetplane.pipelines.sources import PipelineNotFound
from fleetplane.pipelines.worker import Worker
from fleetplane.store.db import Store
from fleetplane.telemetry.spans import GenAISpans

MAX_BODY = 1_048_576
DEDUPE_KEY_MAX = 255  # pipeline_runs.dedupe_key


class HttpError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        self.status, self.kind = status, kind
        super().__init__(message)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=str), status_code=status, media_type="application/json")


def _error(status: int, kind: str, message: str) -> Response:
    return _json({"error": {"message": message, "type": kind}}, status)


def run_json(run: RunRecord) -> dict[str, Any]:
    return {k: v for k, v in run.__dict__.items() if k not in ("lease_owner", "lease_until", "lease_epoch")}


class PipelineService:
    def __init__(self, deps: Deps, *, directory: str | Path | None = None, worker: bool = True) -> None:
        self.deps = deps
        self.directory = directory
        self.worker = Worker(deps) if worker else None
        self.scheduler = Scheduler(deps, directory=directory)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.worker is not None:
            self._tasks = [
                asyncio.create_task(self.worker.serve()),
                asyncio.create_task(self.scheduler.serve()),
            ]

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.scheduler.stop()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.deps.http.aclose()
        if self.deps.gateway is not None:
            await self.deps.gateway.close()

    def routes(self) -> list[Route]:
        return [
            Route("/pipelines/{name}/trigger", self._guarded(self.trigger), methods=["POST"]),
            Route("/admin/pipelines/runs", self._guarded(self.list_runs), methods=["GET"]),
            Route("/admin/pipelines/runs/{id}", self._guarded(self.get_run), methods=["GET"]),
            Route("/admin/pipelines/runs/{id}/resume", self._guarded(self.resume_run), methods=["POST"]),
            Route("/admin/pipelines/runs/{id}/cancel", self._guarded(self.cancel_run), methods=["POST"]),
            Route("/admin/pipelines/approvals", self._guarded(self.list_approvals), methods=["GET"]),
            Route("/admin/pipelines/approvals/{id}/{decision}", self._guarded(self.decide), methods=["POST"]),
        ]

    @staticmethod
    def _guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except HttpError as exc:
                return _error(exc.status, exc.kind, str(exc))
            except ControlError as exc:
                return _error(exc.status, "not_found" if exc.status == 404 else "conflict", str(exc))
            except ApprovalInvalid as exc:
                return _error(400, "invalid_request", str(exc))
            except ApprovalError as exc:
                status = 404 if str(exc).startswith("no approval") else 409
                return _error(status, "not_found" if status == 404 else "conflict", str(exc))

        return endpoint

    async def _plan(self, name: str) -> Plan:
        try:
            return await find_plan(self.deps.store, name, self.directory)
        except PipelineNotFound as exc:
            raise HttpError(404, "not_found", str(exc)) from None
        except ManifestErrors as exc:
            raise HttpError(500, "invalid_pipeline", str(exc).splitlines()[0]) from None
        except OSError as exc:  # FLEETPLANE_PIPELINES_DIR names a directory that is gone
            raise HttpError(503, "unavailable", f"the pipelines directory cannot be read: {exc}") from None

    async def trigger(self, request: Request) -> Response:
        name = request.path_params["name"]
        plan = await self._plan(name)
        webhook = plan.spec.trigger.webhook
        if webhook is None:
            raise HttpError(
                404, "not_found", f"pipeline {name} has no webhook trigger (spec.trigger.webhook)"
            )
        if webhook.token is not None:
            self._check_token(request, webhook.token, name)
        body = await _capped_body(request)
        try:
            payload = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError as exc:
            raise HttpError(400, "invalid_request", f"the body is not JSON: {exc}") from None
        key = self._dedupe_key(request, plan, payload)
        traceparent = request.headers.get("traceparent")
        try:
            run, created = await start_run(
                self.deps, plan, payload, trigger="webhook", dedupe_key=key, traceparent=traceparent
            )
        except StartError as exc:
            raise HttpError(422, "invalid_input", str(exc)) from None
        if not created and _from_header(plan) and run.input != payload:
            # A client that reuses a key for another request would otherwise lose that request silently.
            raise HttpError(
                409,
                "conflict",
                f"dedupe key {key!r} already started run {run.id} with a different body; "
                "a new request needs a new key",
            )
        return _json({"run": run.id, "status": run.status, "created": created}, 202 if created else 200)

    def _check_token(self, request: Request, token: Any, name: str) -> None:
        try:
            expected = read_secret(token, base_dir=Path.cwd())
        except SecretUnavailable as exc:
            raise HttpError(
                503, "unavailable", f"pipeline {name}: its webhook token is unavailable: {exc}"
            ) from None
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise HttpError(401, "authentication_error", f"pipeline {name}: a valid bearer token is required")

    @staticmethod
    def _dedupe_key(request: Request, plan: Plan, payload: Any) -> str:
        webhook = plan.spec.trigger.webhook
        dedupe = webhook.dedupe if webhook is not None else None
        if dedupe is not None and dedupe.expr is not None:
            try:
                value = compile_condition(dedupe.expr).evaluate({"input": payload})
            except ExprError as exc:
                raise HttpError(400, "invalid_request", f"the dedupe key: {exc}") from None
            if value is None or value == "":
                raise HttpError(
                    400, "invalid_request", f"the dedupe key {dedupe.expr} is empty for this body"
                )
            return _fitted(str(value))
        header = dedupe.header if dedupe is not None and dedupe.header else "Idempotency-Key"
        value = request.headers.get(header, "").strip()
        if not value:
            raise HttpError(
                400, "invalid_request", f"a webhook run needs a dedupe key: send the {header} header"
            )
        return _fitted(value)

    async def list_runs(self, request: Request) -> Response:
        status = request.query_params.get("status")
        _one_of("status", status, sorted(RUN_STATUSES))
        runs = await RunStore(self.deps.store).query(
            pipeline=request.query_params.get("pipeline"), status=[status] if status else None
        )
        return _json({"runs": [run_json(r) for r in runs]})

    async def get_run(self, request: Request) -> Response:
        view = await show(self.deps.store, request.path_params["id"])
        body = {
            "run": run_json(view.run),
            "steps": view.steps,
            "approvals": view.approvals,
            "output": view.output,
            "reasoning": [r.__dict__ for r in view.reasoning],
        }
        return _json(body)

    async def resume_run(self, request: Request) -> Response:
        body = await _body(request)
        _strings(body, "actor", "step")
        run = await resume(
            self.deps.store,
            request.path_params["id"],
            now=self.deps.clock.now(),
            actor=str(body.get("actor") or "api"),
            step=body.get("step"),
            output=body.get("output"),
            rerun=bool(body.get("rerun")),
        )
        return _json({"run": run_json(run)})

    async def cancel_run(self, request: Request) -> Response:
        body = await _body(request)
        _strings(body, "actor", "reason")
        run = await cancel(
            self.deps.store,
            request.path_params["id"],
            now=self.deps.clock.now(),
            actor=str(body.get("actor") or "api"),
            reason=body.get("reason"),
        )
        return _json({"run": run_json(run)})

    async def list_approvals(self, request: Request) -> Response:
        status = request.query_params.get("status", "pending")
        _one_of("status", status, [*APPROVAL_STATUSES, "all"])
        gates = await Approvals(self.deps.store).query(status=None if status == "all" else (status,))
        return _json({"approvals": [g.__dict__ for g in gates]})

    async def decide(self, request: Request) -> Response:
        decision = request.path_params["decision"]
        if decision not in ("approve", "reject"):
            raise HttpError(404, "not_found", f"no decision {decision!r}: approve or reject")
        body = await _body(request)
        _strings(body, "reason", "actor")
        if decision == "reject" and not body.get("reason"):
            raise HttpError(400, "invalid_request", 'a rejection needs a reason: {"reason": "..."}')
        gate = await Approvals(self.deps.store).decide(
            request.path_params["id"],
            approve=decision == "approve",
            actor=str(body.get("actor") or "api"),
            now=self.deps.clock.now(),
            reason=body.get("reason"),
            edited=body.get("edited"),
        )
        return _json({"approval": gate.__dict__})


def _one_of(name: str, value: str | None, allowed: list[str]) -> None:
    if value is not None and value not in allowed:
        raise HttpError(400, "invalid_request", f"{name} {value!r}: expected one of {', '.join(allowed)}")


def _strings(body: dict[str, Any], *fields: str) -> None:
    """Fields that, when given, must be strings (they are stored and shown as text)."""
    for name in fields:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise HttpError(
                400, "invalid_request", f"{name} must be a string, not {type(body[name]).__name__}"
            )


def _fitted(key: str) -> str:
    """A dedupe key that fits its column: a long one by its sha256, never cut (two long keys sharing
    their first 255 characters are different requests)."""
    if len(key) <= DEDUPE_KEY_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _from_header(plan: Plan) -> bool:
    webhook = plan.spec.trigger.webhook
    return webhook is None or webhook.dedupe is None or webhook.dedupe.expr is None


async def _capped_body(request: Request) -> bytes:
    """The body, refused with 413 past `MAX_BODY` without reading more of it than that."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HttpError(413, "invalid_request", f"the body is {declared} bytes; at most {MAX_BODY}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(413, "invalid_request", f"the body is over {MAX_BODY} bytes; at most {MAX_BODY}")
        chunks.append(chunk)
    return b"".join(chunks)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "invalid_request", f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HttpError(400, "invalid_request", "the body must be a JSON object")
    return value


def server_service(
    store: Store,
    *,
    gateway_url: str | None = None,
    gateway_key: str | None = None,
    spans: GenAISpans | None = None,
) -> PipelineService:
    """The service `fleetplane up` mounts: the skills catalog, the gateway (FLEETPLANE_GATEWAY_URL, else
    this server's own), the server's telemetry, and a worker and a scheduler unless
    `FLEETPLANE_PIPELINE_WORKER=false` (a replica that only takes triggers)."""
    deps = make_deps(store)
    if deps.gateway is None and gateway_url is not None:
        deps.gateway = GatewayClient(gateway_url, gateway_key, spans=spans)
    deps.spans = spans
    worker = os.environ.get("FLEETPLANE_PIPELINE_WORKER", "true").lower() not in ("0", "false", "no")
    return PipelineService(deps, directory=os.environ.get("FLEETPLANE_PIPELINES_DIR"), worker=worker)
