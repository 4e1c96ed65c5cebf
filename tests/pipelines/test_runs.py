"""One trace per run across turns, leases between workers, hot-swap pinning, the audit chain, both stores."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fakeskills import FakeCatalog, effects_log
from sqlalchemy import delete, select, update
from test_crash_windows import Receiver
from test_engine import BASIC
from test_governance import GATED, GUARDED, drain

from fleetplane.pipelines.approvals import Approvals
from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.control import show
from fleetplane.pipelines.engine import start_run, take_turn
from fleetplane.pipelines.journal import Journal
from fleetplane.pipelines.runs import LeaseLost, RunStore
from fleetplane.pipelines.worker import Worker
from fleetplane.state.clock import ManualClock
from fleetplane.store.audit import AuditLog
from fleetplane.store.db import Store
from fleetplane.store.tables import audit_log, pipeline_sink_rows
from fleetplane.telemetry.processors import InMemorySink
from fleetplane.telemetry.setup import Telemetry

pytestmark = pytest.mark.anyio


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()


async def test_one_trace_id_through_every_stage_and_across_a_resume(
    deps: Deps, make_plan: Any, receiver: Receiver
) -> None:
    sink = InMemorySink()
    telemetry = Telemetry.create("pipelines-test", span_sinks=(sink,), otlp=False)
    deps.spans = telemetry.spans
    text = GATED + f'  sink:\n    - name: crm\n      http: {{url: "{receiver.url}"}}\n'
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    run, _ = await start_run(deps, make_plan(text), {"order": "o", "amount": 250}, traceparent=caller)
    await drain(deps, run.id)
    [gate] = await Approvals(deps.store).query()
    await Approvals(deps.store).decide(gate.id, approve=True, actor="ana", now=deps.clock.now())
    done = await drain(deps, run.id)
    assert done.status == "succeeded"
    assert telemetry.force_flush()
    telemetry.shutdown()
    assert done.trace_id == "0af7651916cd43dd8448eb211c80319c"  # the webhook caller's trace, joined
    names = [s.name for s in sink.spans]
    assert names.count("invoke_workflow gated") == 2  # the first turn and the one after the approval
    assert {"execute_tool lookup", "execute_tool charge", "execute_tool echo"} <= set(names)
    assert {f"{s.context.trace_id:032x}" for s in sink.spans} == {done.trace_id}
    second = [s for s in sink.spans if s.name == "invoke_workflow gated"][1]
    assert second.parent is not None and f"{second.parent.span_id:016x}" == done.root_span_id
    [(_, traceparent)] = receiver.requests
    assert traceparent is not None and traceparent.split("-")[1] == done.trace_id


async def test_two_workers_never_run_the_same_step(deps: Deps, make_plan: Any) -> None:
    run, _ = await start_run(deps, make_plan(GATED), {"order": "o", "amount": 5})
    runs = RunStore(deps.store)
    first = await runs.acquire(run.id, "w1", now=deps.clock.now(), ttl=60)
    assert first is not None
    assert await runs.acquire(run.id, "w2", now=deps.clock.now(), ttl=60) is None
    assert await take_turn(deps, run.id, "w2") is None  # it holds no lease, so it runs nothing
    deps.clock.advance(61)  # type: ignore[attr-defined]
    second = await runs.acquire(run.id, "w2", now=deps.clock.now(), ttl=60)
    assert second is not None and second.epoch == first.epoch + 1
    with pytest.raises(LeaseLost, match=f"run {run.id}: the lease of w1 \\(epoch 1\\) is gone"):
        await Journal(deps.store, first).intent(
            "look",
            node="look",
            kind="step",
            attempt=1,
            key="k",
            skill=None,
            input_hash=None,
            now=deps.clock.now(),
        )
    assert effects_log() == []


async def test_promote_while_runs_are_in_flight(deps: Deps, make_plan: Any, catalog: FakeCatalog) -> None:
    text = """
    metadata: {name: swap}
    spec:
      execute:
        - {id: gate, skill: echo@*, input: {x: 1}, approval: {required: true}}
    """
    plan = make_plan(text)
    before = [(await start_run(deps, plan, {"i": i}))[0] for i in range(3)]
    await Worker(deps, owner="w").drain()  # all three wait at their gate, pinned to echo 1.0.0
    catalog.promote("echo", "2.0.0")
    after = [(await start_run(deps, plan, {"i": i}))[0] for i in range(3, 5)]
    approvals = Approvals(deps.store)
    await Worker(deps, owner="w").drain()
    for gate in await approvals.query():
        await approvals.decide(gate.id, approve=True, actor="ana", now=deps.clock.now())
    await Worker(deps, owner="w").drain()
    runs = RunStore(deps.store)
    for run in before + after:
        ended = await runs.get(run.id)
        assert ended is not None and ended.status == "succeeded"
    assert {r.lock["echo@*"]["version"] for r in before} == {"1.0.0"}
    assert {r.lock["echo@*"]["version"] for r in after} == {"2.0.0"}
    assert sorted(catalog.loads) == ["echo@1.0.0"] * 3 + ["echo@2.0.0"] * 2
    catalog.promote("echo", "1.0.0")  # rollback: the next run is on 1.0.0 again
    again, _ = await start_run(deps, plan, {"i": 9})
    assert again.lock["echo@*"]["version"] == "1.0.0"


async def test_the_audit_chain_detects_an_edited_or_deleted_entry(deps: Deps, make_plan: Any) -> None:
    for amount in (250, 260):
        run, _ = await start_run(deps, make_plan(GATED), {"order": "o", "amount": amount})
        await drain(deps, run.id)
    log = AuditLog(deps.store)
    assert (await log.verify()).ok
    async with deps.store.engine.begin() as conn:
        await conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(details={"gate": "edited"}))
    edited = await log.verify()
    assert not edited.ok and edited.seq == 2 and edited.problem is not None
    assert edited.problem.startswith("entry 2 (approval.request gated/")
    async with deps.store.engine.begin() as conn:
        await conn.execute(delete(audit_log).where(audit_log.c.seq == 2))
    deleted = await log.verify()
    assert not deleted.ok and deleted.problem == "entry 2 is missing (the next is 3)"


async def outcome(url: str, make_plan: Any) -> list[Any]:
    """The same scenarios on one store — routed runs, a gate approved and one rejected, a guardrail
    block — and what each left: status, error, output, journal, reasoning, audit kinds, sink rows."""
    store = await Store.open(url)
    catalog = FakeCatalog()
    deps = Deps(store=store, catalogs=lambda _s: catalog, clock=ManualClock(start=time.time()))
    approvals = Approvals(store)
    try:
        runs = [
            (await start_run(deps, make_plan(BASIC), {"order": o, "amount": a}))[0]
            for o, a in (("o", 50), ("p", 500))
        ]
        runs += [
            (await start_run(deps, make_plan(GATED), {"order": o, "amount": 250}))[0] for o in ("q", "r")
        ]
        runs.append((await start_run(deps, make_plan(GUARDED), {"amount": 1, "note": "4111111111111111"}))[0])
        await Worker(deps, owner="w").drain()
        approve = {runs[2].id: True, runs[3].id: False}  # by run: the gates' order is their random ids'
        for gate in await approvals.query():
            await approvals.decide(
                gate.id, approve=approve[gate.run_id], actor="ana", now=deps.clock.now(), reason="r"
            )
        await Worker(deps, owner="w").drain()
        results: list[Any] = []
        for run in runs:
            view = await show(store, run.id)
            steps = sorted((s["step_key"], s["state"], s["attempt"], s["output_digest"]) for s in view.steps)
            reasons = [(r.kind, r.step_key, r.data) for r in view.reasoning]
            results.append((view.run.status, view.run.error, view.output, steps, reasons))
        # Runs started at the same instant may be taken in either order, and approval ids are random.
        entries = [
            (e.kind, {k: v for k, v in e.details.items() if k != "approval"})
            for e in await AuditLog(store).entries()
        ]
        results.append(sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in entries))
        async with store.engine.connect() as conn:
            results.append(
                sorted(
                    orjson.dumps(r.data, option=orjson.OPT_SORT_KEYS)
                    for r in (await conn.execute(select(pipeline_sink_rows))).all()
                )
            )
        return results
    finally:
        await deps.http.aclose()
        await store.close()


async def test_sqlite_and_postgres_give_the_same_results(
    sqlite_url: str, postgres_url: str, make_plan: Any, effects: Any
) -> None:
    on_sqlite = await outcome(sqlite_url, make_plan)
    assert [(r[0], r[1]) for r in on_sqlite[:5]] == [
        ("succeeded", None),
        ("succeeded", None),
        ("succeeded", None),
        ("failed", "approval pay rejected by ana: r"),
        ("failed", "guardrail no-cards blocked pay: regex: the value matches '\\\\b\\\\d{16}\\\\b'"),
    ]
    assert on_sqlite == await outcome(postgres_url, make_plan)
