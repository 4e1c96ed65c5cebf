"""The review queue's surfaces: `fleetplane review list|next|label|agreement` (CliRunner on a SQLite store)
and the HTTP API under /admin/evals (exact statuses and error bodies), user feedback included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import typer
from starlette.applications import Starlette
from typer.testing import CliRunner, Result

from fleetplane.cli import review
from fleetplane.evals.online.items import OnlineItems, ScoreRow
from fleetplane.evals.review import ReviewQueue
from fleetplane.evals.review.api import review_routes
from fleetplane.store.db import Store

T1, T2 = "a" * 32, "b" * 32
Invoke = Callable[..., Result]
SUBJECT = {"input": [{"role": "user", "content": "refund?"}], "output": "no", "finish_reason": "stop"}


async def seed(url: str) -> None:
    store = await Store.open(url)
    try:
        queue = ReviewQueue(store)
        await queue.enqueue(
            T1, "1" * 16, source="flagged", reasons=["too-short", "low-score"], subject=SUBJECT, now=1.0
        )
        await queue.enqueue(T2, "2" * 16, source="audit", reasons=["audit"], subject=SUBJECT, now=2.0)
        assert await queue.enqueue(T1, "1" * 16, source="flagged", reasons=[], subject={}, now=3.0) is None
        await OnlineItems(store).add_scores(
            [
                ScoreRow(
                    T1,
                    "1" * 16,
                    "length",
                    "quality",
                    "heuristic",
                    0.0,
                    False,
                    "",
                    ["too-short"],
                    1e-7,
                    0.1,
                    {},
                    5.0,
                ),
            ]
        )
    finally:
        await store.close()


@pytest.fixture
def invoke(tmp_path: Path) -> Invoke:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    asyncio.run(seed(url))
    app = typer.Typer()
    review.register(app)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, ["review", *args, "--database-url", url])

    return run


def test_review_cli_list_next_label_agreement(invoke: Invoke) -> None:
    run = invoke
    listed = run("list", "--json")
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.output)
    assert [(i["trace_id"], i["source"], i["reasons"], i["status"]) for i in items] == [
        (T1, "flagged", ["low-score", "too-short"], "open"),
        (T2, "audit", ["audit"], "open"),
    ]

    taken = run("next", "-r", "ana", "--json")
    item = json.loads(taken.output)
    assert item["trace_id"] == T1 and item["status"] == "assigned" and item["assignee"] == "ana"
    shown = run("next", "-r", "ana")
    assert "low-score, too-short" in shown.output and "refund?" in shown.output  # the item Ana holds

    bad = run("label", item["id"], "quality=2", "-r", "ana")
    assert bad.exit_code == 2
    assert "label 'quality=2': expected DIMENSION=VALUE with a value in [0, 1]" in bad.output
    missing = run("label", "nope", "quality=1", "-r", "ana")
    assert missing.exit_code == 2 and "no review item 'nope'" in missing.output
    done = run("label", item["id"], "quality=0", "--comment", "too short", "-r", "ana")
    assert done.exit_code == 0 and f"labelled {item['id']}: quality=0" in done.output

    rates = json.loads(run("agreement", "--json").output)
    assert rates == [
        {
            "scorer": "length",
            "tier": "heuristic",
            "dimension": "quality",
            "items": 1,
            "agreed": 1,
            "mean_abs_diff": 0.0,
            "rate": 1.0,
        }
    ]
    assert run("list", "--status", "nope").exit_code == 2


@pytest.mark.anyio
async def test_review_api_and_feedback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    await seed(url)
    store = await Store.open(url)
    app = Starlette(routes=review_routes(store, clock=lambda: 10.0))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            listed = await client.get("/admin/evals/review/items", params={"status": "open"})
            assert listed.status_code == 200 and len(listed.json()["items"]) == 2
            bad_status = await client.get("/admin/evals/review/items", params={"status": "x"})
            assert bad_status.status_code == 400
            assert bad_status.json() == {
                "error": {
                    "message": "status 'x' is not one of: open, assigned, labelled",
                    "type": "invalid_request_error",
                }
            }
            no_name = await client.post("/admin/evals/review/next", json={})
            assert no_name.status_code == 400
            assert no_name.json()["error"]["message"] == "'reviewer' (a name) is required"
            taken = (await client.post("/admin/evals/review/next", json={"reviewer": "bo"})).json()["item"]
            assert taken["trace_id"] == T1 and taken["assigned_at"] == 10.0
            labelled = await client.post(
                f"/admin/evals/review/items/{taken['id']}/labels",
                json={"reviewer": "bo", "labels": {"quality": 1}, "comment": "fine"},
            )
            assert labelled.status_code == 200 and labelled.json()["item"]["status"] == "labelled"
            unknown = await client.post(
                "/admin/evals/review/items/zzz/labels", json={"reviewer": "bo", "labels": {"quality": 1}}
            )
            assert unknown.status_code == 404
            assert unknown.json()["error"]["message"] == "no review item 'zzz'"
            out_of_range = await client.post(
                f"/admin/evals/review/items/{taken['id']}/labels",
                json={"reviewer": "bo", "labels": {"quality": 7}},
            )
            assert out_of_range.status_code == 400
            assert out_of_range.json()["error"]["message"] == "label quality=7: expected a value in [0, 1]"
            for labels, message in (
                ({"quality": True}, "label quality=True: expected a value in [0, 1]"),
                ({"q" * 300: 1}, f"label {'q' * 40}...: a dimension name is at most 253 characters"),
            ):
                refused = await client.post(
                    f"/admin/evals/review/items/{taken['id']}/labels",
                    json={"reviewer": "bo", "labels": labels},
                )
                assert (refused.status_code, refused.json()["error"]["message"]) == (400, message)
            long_name = await client.post("/admin/evals/review/next", json={"reviewer": "r" * 256})
            assert (long_name.status_code, long_name.json()["error"]["message"]) == (
                400,
                "a reviewer name is at most 255 characters",
            )
            rates = (await client.get("/admin/evals/review/agreement")).json()["agreement"]
            assert [(r["scorer"], r["items"], r["agreed"]) for r in rates] == [("length", 1, 0)]  # 0.0 vs 1.0

            feedback = await client.post("/admin/evals/feedback", json={"trace_id": T1.upper(), "value": 0})
            assert feedback.status_code == 200 and feedback.json() == {"recorded": True, "flagged": False}
            wrong = await client.post("/admin/evals/feedback", json={"trace_id": T1, "value": 3})
            assert wrong.status_code == 400
            assert (
                wrong.json()["error"]["message"]
                == "'value' must be a number in [0, 1] (0 = bad answer, 1 = good)"
            )
            not_hex = await client.post("/admin/evals/feedback", json={"trace_id": "z" * 32, "value": 1})
            assert (not_hex.status_code, not_hex.json()["error"]["message"]) == (
                400,
                "'trace_id' must be the 32 hex digits of a trace id",
            )
            not_json = await client.post("/admin/evals/feedback", content=b"{")
            assert (
                not_json.status_code == 400 and not_json.json()["error"]["message"] == "the body is not JSON"
            )
        assert await OnlineItems(store).negative_feedback([T1, T2]) == {T1}
    finally:
        await store.close()
