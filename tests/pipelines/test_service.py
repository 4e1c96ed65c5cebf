"""The HTTP API in process: the webhook trigger with its dedupe key, runs and approvals, exact errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.schedule import CronError, Scheduler, due_slot, parse_cron
from fleetplane.pipelines.service import PipelineService
from fleetplane.pipelines.worker import Worker

pytestmark = pytest.mark.anyio

HOOKED = """apiVersion: fleetplane.dev/v1alpha1
kind: Pipeline
metadata: {name: hooked}
spec:
  trigger:
    webhook: {}
    schedule: {every: 1h, input: {order: nightly, amount: 1}}
    input: {type: object, required: [order, amount], properties: {amount: {type: number}}}
  execute:
    - {id: look, skill: lookup@^1, input: {order_id: "{{ input.order }}"}}
    - id: pay
      skill: charge@^1
      needs: [look]
      input: {amount: "{{ input.amount }}"}
      approval: {when: "input.amount > 100"}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Pipeline
metadata: {name: keyed}
spec:
  trigger:
    webhook: {dedupe: {expr: input.event_id}}
  execute:
    - {id: e, skill: echo@*}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Pipeline
metadata: {name: guarded}
spec:
  trigger:
    webhook: {token: {env: HOOK_TOKEN}}
  execute:
    - {id: e, skill: echo@*}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Pipeline
metadata: {name: manual-only}
spec:
  execute:
    - {id: e, skill: echo@*}
"""


@pytest.fixture
def plans_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "plans"
    directory.mkdir()
    (directory / "pipelines.yaml").write_text(HOOKED)
    return directory


@pytest.fixture
async def client(deps: Deps, plans_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    service = PipelineService(deps, directory=plans_dir, worker=False)
    app = Starlette(routes=service.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as made:
        yield made


async def test_a_webhook_starts_one_run_per_dedupe_key(client: httpx.AsyncClient, deps: Deps) -> None:
    body = {"order": "o-1", "amount": 250}
    first = await client.post("/pipelines/hooked/trigger", json=body, headers={"Idempotency-Key": "evt-1"})
    assert first.status_code == 202
    run_id = first.json()["run"]
    assert first.json() == {"run": run_id, "status": "pending", "created": True}
    again = await client.post("/pipelines/hooked/trigger", json=body, headers={"Idempotency-Key": "evt-1"})
    assert (again.status_code, again.json()) == (200, {"run": run_id, "status": "pending", "created": False})
    await Worker(deps, owner="w").drain()
    listed = (await client.get("/admin/pipelines/approvals")).json()["approvals"]
    assert [(a["run_id"], a["gate"], a["arguments"]) for a in listed] == [(run_id, "pay", {"amount": 250})]
    decided = await client.post(
        f"/admin/pipelines/approvals/{listed[0]['id']}/approve", json={"actor": "ana"}
    )
    assert decided.status_code == 200 and decided.json()["approval"]["status"] == "approved"
    await Worker(deps, owner="w").drain()
    shown = (await client.get(f"/admin/pipelines/runs/{run_id}")).json()
    assert shown["run"]["status"] == "succeeded" and shown["run"]["trigger"] == "webhook"
    assert shown["output"] == {"charged": 250}
    assert [s["step_key"] for s in shown["steps"]] == ["look", "pay"]


async def test_a_reused_key_with_another_body_is_a_conflict_not_a_lost_request(
    client: httpx.AsyncClient,
) -> None:
    key = {"Idempotency-Key": "evt-2"}
    first = await client.post("/pipelines/hooked/trigger", json={"order": "o-1", "amount": 5}, headers=key)
    assert first.status_code == 202
    other = await client.post("/pipelines/hooked/trigger", json={"order": "o-2", "amount": 7}, headers=key)
    assert (other.status_code, other.json()) == (
        409,
        {
            "error": {
                "message": f"dedupe key 'evt-2' already started run {first.json()['run']} with a different "
                "body; a new request needs a new key",
                "type": "conflict",
            }
        },
    )
    assert len((await client.get("/admin/pipelines/runs")).json()["runs"]) == 1


async def test_long_dedupe_keys_that_share_a_prefix_start_two_runs(client: httpx.AsyncClient) -> None:
    body = {"order": "o-1", "amount": 5}
    keys = ["k" * 300 + "-a", "k" * 300 + "-b"]
    started = [
        await client.post("/pipelines/hooked/trigger", json=body, headers={"Idempotency-Key": k})
        for k in keys
    ]
    assert [r.status_code for r in started] == [202, 202]
    again = await client.post("/pipelines/hooked/trigger", json=body, headers={"Idempotency-Key": keys[0]})
    assert (again.status_code, again.json()["run"]) == (200, started[0].json()["run"])


async def test_an_oversized_body_is_refused_before_it_is_read(client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "big"}
    declared = await client.post(
        "/pipelines/hooked/trigger", content=b"{}", headers={**key, "content-length": str(2**31)}
    )
    assert (declared.status_code, declared.json()["error"]["message"]) == (
        413,
        f"the body is {2**31} bytes; at most 1048576",
    )

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: streamed until the cap
        for _ in range(3):
            yield b" " * 600_000

    streamed = await client.post("/pipelines/hooked/trigger", content=chunks(), headers=key)
    assert (streamed.status_code, streamed.json()["error"]["message"]) == (
        413,
        "the body is over 1048576 bytes; at most 1048576",
    )
    assert (await client.get("/admin/pipelines/runs")).json() == {"runs": []}


async def test_the_dedupe_key_can_come_from_the_body(client: httpx.AsyncClient) -> None:
    ok = await client.post("/pipelines/keyed/trigger", json={"event_id": "e-9"})
    dup = await client.post("/pipelines/keyed/trigger", json={"event_id": "e-9"})
    assert (ok.status_code, dup.status_code) == (202, 200) and ok.json()["run"] == dup.json()["run"]
    empty = await client.post("/pipelines/keyed/trigger", json={"other": 1})
    assert (empty.status_code, empty.json()) == (
        400,
        {
            "error": {
                "message": "the dedupe key input.event_id is empty for this body",
                "type": "invalid_request",
            }
        },
    )


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "error"),
    [
        (
            "/pipelines/nope/trigger",
            {},
            {"Idempotency-Key": "k"},
            404,
            {
                "message": "no Pipeline named 'nope' (known: guarded, hooked, keyed, manual-only)",
                "type": "not_found",
            },
        ),
        (
            "/pipelines/manual-only/trigger",
            {},
            {"Idempotency-Key": "k"},
            404,
            {
                "message": "pipeline manual-only has no webhook trigger (spec.trigger.webhook)",
                "type": "not_found",
            },
        ),
        (
            "/pipelines/hooked/trigger",
            {"order": "o", "amount": 1},
            {},
            400,
            {
                "message": "a webhook run needs a dedupe key: send the Idempotency-Key header",
                "type": "invalid_request",
            },
        ),
        (
            "/pipelines/hooked/trigger",
            b"{nope",
            {"Idempotency-Key": "k"},
            400,
            {
                "message": "the body is not JSON: unexpected character, expected a string key: "
                "line 1 column 2 (char 1)",
                "type": "invalid_request",
            },
        ),
        (
            "/pipelines/hooked/trigger",
            {"order": "o", "amount": "lots"},
            {"Idempotency-Key": "k"},
            422,
            {
                "message": "input of pipeline hooked: at amount: 'lots' is not of type 'number'",
                "type": "invalid_input",
            },
        ),
    ],
)
async def test_bad_triggers_get_exact_errors(
    client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str], status: int, error: Any
) -> None:
    content = body if isinstance(body, bytes) else None
    response = await client.post(path, json=None if content else body, content=content, headers=headers)
    assert (response.status_code, response.json()) == (status, {"error": error})
    assert (await client.get("/admin/pipelines/runs")).json() == {"runs": []}


async def test_bad_requests_about_runs_and_approvals(client: httpx.AsyncClient) -> None:
    missing = await client.get("/admin/pipelines/runs/r-1")
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": {"message": "no run r-1", "type": "not_found"}},
    )
    no_reason = await client.post("/admin/pipelines/approvals/a-1/reject", json={})
    assert no_reason.status_code == 400
    assert no_reason.json()["error"]["message"] == 'a rejection needs a reason: {"reason": "..."}'
    unknown = await client.post("/admin/pipelines/approvals/a-1/approve", json={})
    assert (unknown.status_code, unknown.json()["error"]["message"]) == (404, "no approval a-1")


async def test_malformed_decisions_are_400_and_leave_the_gate_pending(
    client: httpx.AsyncClient, deps: Deps
) -> None:
    started = await client.post(
        "/pipelines/hooked/trigger", json={"order": "o-1", "amount": 250}, headers={"Idempotency-Key": "e"}
    )
    run_id = started.json()["run"]
    await Worker(deps, owner="w").drain()
    gate = (await client.get("/admin/pipelines/approvals")).json()["approvals"][0]["id"]
    edited = await client.post(f"/admin/pipelines/approvals/{gate}/approve", json={"edited": [1]})
    assert (edited.status_code, edited.json()) == (
        400,
        {
            "error": {
                "message": f"approval {gate}: the edited arguments must be a JSON object, not list",
                "type": "invalid_request",
            }
        },
    )
    reason = await client.post(f"/admin/pipelines/approvals/{gate}/reject", json={"reason": 5})
    assert (reason.status_code, reason.json()["error"]["message"]) == (
        400,
        "reason must be a string, not int",
    )
    step = await client.post(f"/admin/pipelines/runs/{run_id}/resume", json={"step": ["pay"]})
    assert (step.status_code, step.json()["error"]["message"]) == (400, "step must be a string, not list")
    pending = (await client.get("/admin/pipelines/approvals")).json()["approvals"]
    assert [(a["id"], a["status"]) for a in pending] == [(gate, "pending")]
    runs = await client.get("/admin/pipelines/runs?status=done")
    assert (runs.status_code, runs.json()["error"]["message"]) == (
        400,
        "status 'done': expected one of cancelled, failed, needs_attention, pending, running, succeeded, "
        "waiting_approval",
    )
    gates = await client.get("/admin/pipelines/approvals?status=open")
    assert (gates.status_code, gates.json()["error"]["message"]) == (
        400,
        "status 'open': expected one of pending, approved, rejected, expired, all",
    )


async def test_a_pipelines_directory_that_is_gone_is_503_not_a_crash(deps: Deps, tmp_path: Path) -> None:
    service = PipelineService(deps, directory=tmp_path / "gone", worker=False)
    app = Starlette(routes=service.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        hook = await client.post("/pipelines/hooked/trigger", json={}, headers={"Idempotency-Key": "k"})
    assert (hook.status_code, hook.json()["error"]) == (
        503,
        {
            "message": "the pipelines directory cannot be read: no such file or directory: "
            f"{tmp_path / 'gone'}",
            "type": "unavailable",
        },
    )


async def test_the_scheduler_starts_one_run_per_slot(deps: Deps, plans_dir: Path) -> None:
    deps.clock.set(3600 * 1000 + 10)  # type: ignore[attr-defined]
    scheduler = Scheduler(deps, directory=plans_dir)
    assert await scheduler.tick() == []  # this hour's slot began before the scheduler did
    deps.clock.advance(3600)  # type: ignore[attr-defined]
    started = await scheduler.tick()
    assert len(started) == 1
    assert await Scheduler(deps, directory=plans_dir).tick() == []  # another replica: the same slot, deduped
    deps.clock.advance(3600)  # type: ignore[attr-defined]
    assert len(await scheduler.tick()) == 1


def test_cron_fields() -> None:
    minute, hour, day, _, weekday = parse_cron("*/15 9-17 1,15 * 7")
    assert minute == {0, 15, 30, 45} and hour == set(range(9, 18)) and day == {1, 15} and weekday == {0}
    with pytest.raises(CronError, match="cron hour field '25': values must lie in 0-23"):
        parse_cron("0 25 * * *")
    with pytest.raises(CronError, match="has 4 fields; expected 5"):
        parse_cron("0 * * *")
    from fleetplane.manifests.pipeline import Schedule

    every_monday_9 = Schedule(cron="0 9 * * 1", timezone="UTC")
    assert due_slot(every_monday_9, 1_700_470_800.0) == 1_700_470_800.0  # Monday 2023-11-20 09:00 UTC
    assert due_slot(every_monday_9, 1_700_470_860.0) is None


async def test_a_webhook_with_a_token_needs_it(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    unset = await client.post("/pipelines/guarded/trigger", json={}, headers=headers)
    assert (unset.status_code, unset.json()["error"]["message"]) == (
        503,
        "pipeline guarded: its webhook token is unavailable: environment variable HOOK_TOKEN is not set",
    )
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    wrong = await client.post(
        "/pipelines/guarded/trigger", json={}, headers={**headers, "Authorization": "Bearer no"}
    )
    assert (wrong.status_code, wrong.json()) == (
        401,
        {
            "error": {
                "message": "pipeline guarded: a valid bearer token is required",
                "type": "authentication_error",
            }
        },
    )
    right = await client.post(
        "/pipelines/guarded/trigger", json={}, headers={**headers, "Authorization": "Bearer s3cret"}
    )
    assert right.status_code == 202
