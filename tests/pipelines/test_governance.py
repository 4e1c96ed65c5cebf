"""Approval gates, guardrails, retries, tool governance, attention, audit — in process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakeskills import effects_log
from test_engine import run_to_end

from fleetplane.pipelines.approvals import ApprovalError, Approvals
from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.control import ControlError, resume
from fleetplane.pipelines.engine import start_run
from fleetplane.pipelines.journal import read_output, value_hash
from fleetplane.pipelines.reasoning import records
from fleetplane.pipelines.runs import RunStore
from fleetplane.pipelines.worker import Worker
from fleetplane.store.audit import AuditLog

pytestmark = pytest.mark.anyio

GATED = """
metadata: {name: gated}
spec:
  execute:
    - {id: look, skill: lookup@^1, input: {order_id: "{{ input.order }}"}}
    - id: pay
      skill: charge@^1
      needs: [look]
      input: {amount: "{{ input.amount }}"}
      approval: {when: "input.amount > 100", timeout: 1h}
    - {id: tell, skill: echo@*, needs: [pay], input: {paid: "{{ steps.pay.output.charged }}"}}
"""


async def drain(deps: Deps, run_id: str) -> Any:
    await Worker(deps, owner="w").drain()
    return await RunStore(deps.store).get(run_id)


async def test_resume_after_approval_runs_no_earlier_step(deps: Deps, make_plan: Any) -> None:
    run, _ = await start_run(deps, make_plan(GATED), {"order": "o", "amount": 250})
    waiting = await drain(deps, run.id)
    assert waiting.status == "waiting_approval"
    [gate] = await Approvals(deps.store).query()
    assert (gate.gate, gate.arguments) == ("pay", {"amount": 250})
    assert waiting.attention == {"gate": "pay", "approval": gate.id}
    await Approvals(deps.store).decide(
        gate.id, approve=True, actor="ana", now=deps.clock.now(), edited={"amount": 200}
    )
    done = await drain(deps, run.id)
    assert done.status == "succeeded", done.error
    assert [e["skill"] for e in effects_log()] == ["lookup", "charge", "echo"]  # lookup ran once
    assert effects_log()[1]["amount"] == 200  # the edited arguments ran
    with pytest.raises(ApprovalError, match=f"approval {gate.id} is already approved"):
        await Approvals(deps.store).decide(gate.id, approve=False, actor="bo", now=deps.clock.now())


async def test_a_rejected_approval_ends_the_run_with_the_reason(deps: Deps, make_plan: Any) -> None:
    run, _ = await start_run(deps, make_plan(GATED), {"order": "o", "amount": 250})
    await drain(deps, run.id)
    [gate] = await Approvals(deps.store).query()
    await Approvals(deps.store).decide(
        gate.id, approve=False, actor="ana", now=deps.clock.now(), reason="too much"
    )
    ended = await drain(deps, run.id)
    assert (ended.status, ended.error) == ("failed", "approval pay rejected by ana: too much")
    assert [e["skill"] for e in effects_log()] == ["lookup"]
    kinds = [e.kind for e in await AuditLog(deps.store).entries()]
    assert kinds == ["run.start", "approval.request", "approval.rejected"]


async def test_an_approval_past_its_timeout_rejects(deps: Deps, make_plan: Any) -> None:
    run, _ = await start_run(deps, make_plan(GATED), {"order": "o", "amount": 250})
    await drain(deps, run.id)
    deps.clock.advance(3601)  # type: ignore[attr-defined]
    ended = await drain(deps, run.id)
    assert (ended.status, ended.error) == ("failed", "approval pay timed out")


async def test_no_approval_needed_below_the_threshold(deps: Deps, make_plan: Any) -> None:
    ended = await run_to_end(deps, make_plan(GATED), {"order": "o", "amount": 50})
    assert ended.status == "succeeded"
    assert await Approvals(deps.store).query(status=None) == []


GUARDED = """
metadata: {name: guarded}
spec:
  execute:
    - {id: pay, skill: charge@^1, input: {amount: "{{ input.amount }}", note: "{{ input.note }}"}}
  validate:
    - {name: no-cards, step: pay, at: before, regex: ['\\b\\d{16}\\b'], onFail: block}
    - {name: limit, step: pay, assert: "output.charged <= 1000", onFail: human}
    - {name: shape, schema: {type: object, required: [charged]}}
"""


async def test_a_blocking_guardrail_stops_the_step_before_it_runs(deps: Deps, make_plan: Any) -> None:
    ended = await run_to_end(deps, make_plan(GUARDED), {"amount": 5, "note": "card 4111111111111111"})
    assert ended.status == "failed"
    assert ended.error == "guardrail no-cards blocked pay: regex: the value matches '\\\\b\\\\d{16}\\\\b'"
    assert effects_log() == []
    [verdict] = [r.data for r in await records(deps.store, ended.id) if r.kind == "guardrail"]
    assert verdict["passed"] is False and verdict["onFail"] == "block"
    assert [e.kind for e in await AuditLog(deps.store).entries()][-2:] == ["guardrail.block", "run.finish"]


async def test_a_human_guardrail_pauses_and_approval_accepts_the_output(deps: Deps, make_plan: Any) -> None:
    run, _ = await start_run(deps, make_plan(GUARDED), {"amount": 5000, "note": "ok"})
    assert (await drain(deps, run.id)).status == "waiting_approval"
    [gate] = await Approvals(deps.store).query()
    assert gate.kind == "guardrail" and gate.arguments["reasons"] == [
        "assert: output.charged <= 1000 is false"
    ]
    await Approvals(deps.store).decide(gate.id, approve=True, actor="ana", now=deps.clock.now())
    done = await drain(deps, run.id)
    assert done.status == "succeeded"
    assert len(effects_log()) == 1  # the charge was replayed, not repeated


async def test_transient_errors_retry_with_backoff_and_others_fail_fast(deps: Deps, make_plan: Any) -> None:
    flaky = make_plan("""
    metadata: {name: flaky}
    spec:
      execute: [{id: f, skill: flaky@*, input: {fail_times: 2}}]
    """)
    ok = await run_to_end(deps, flaky, {})
    assert ok.status == "succeeded"
    assert [e["attempt"] for e in effects_log()] == [1, 2, 3]
    retries = [r.data for r in await records(deps.store, ok.id) if r.kind == "retry"]
    assert [r["attempt"] for r in retries] == [1, 2]
    broken = make_plan("""
    metadata: {name: broken}
    spec:
      execute: [{id: b, skill: broken@*}]
    """)
    failed = await run_to_end(deps, broken, {})
    assert (failed.status, failed.error) == ("failed", "step b failed (failed): the order does not exist")
    assert len([e for e in effects_log() if e["skill"] == "broken"]) == 1


async def test_too_many_transient_errors_fail_the_step(deps: Deps, make_plan: Any) -> None:
    flaky = make_plan("""
    metadata: {name: flaky}
    spec:
      execute: [{id: f, skill: flaky@*, input: {fail_times: 5}}]
    """)
    failed = await run_to_end(deps, flaky, {})
    assert (failed.status, failed.error) == ("failed", "step f failed (transient): attempt 3 failed")


TOOLS = """
metadata: {name: tools}
spec:
  policy: {tools: [issue_refund]}
  mcp: [{name: pay, url: "http://mcp.test/mcp"}]
  execute: [{id: t, skill: tooluser@*, input: {tool: "{{ input.tool }}", args: "{{ input.args }}"}}]
"""


async def test_a_tool_outside_the_allow_list_is_refused_and_audited(deps: Deps, make_plan: Any) -> None:
    failed = await run_to_end(deps, make_plan(TOOLS), {"tool": "lookup_order", "args": {}})
    assert failed.status == "failed"
    assert failed.error == (
        "step t failed (refused): tool lookup_order refused for step t: "
        "the pipeline's policy does not allow it"
    )
    entries = await AuditLog(deps.store).entries(kind="tool.refused")
    assert entries[0].details == {
        "tool": "lookup_order",
        "step": "t",
        "why": "the pipeline's policy does not allow it",
    }


async def test_a_tool_call_needing_approval_pauses_the_run(deps: Deps, make_plan: Any) -> None:
    run, _ = await start_run(deps, make_plan(TOOLS), {"tool": "issue_refund", "args": {"amount": 500}})
    paused = await drain(deps, run.id)
    assert paused.status == "waiting_approval"
    [gate] = await Approvals(deps.store).query()
    assert (gate.kind, gate.tool, gate.arguments) == ("tool", "issue_refund", {"amount": 500})
    await Approvals(deps.store).decide(gate.id, approve=False, actor="ana", now=deps.clock.now(), reason="no")
    ended = await drain(deps, run.id)
    assert (ended.status, ended.error) == ("failed", "approval t/tool:issue_refund#1 rejected by ana: no")


ONCE = """
metadata: {name: once}
spec:
  execute: [{id: r, skill: refund@*, input: {amount: 10}}]
"""


async def test_an_interrupted_at_most_once_step_waits_for_a_person(deps: Deps, make_plan: Any) -> None:
    run, _ = await start_run(deps, make_plan(ONCE), {})
    runs = RunStore(deps.store)
    fence = await runs.acquire(run.id, "dead", now=deps.clock.now(), ttl=1)
    assert fence is not None
    from fleetplane.pipelines.journal import Journal

    await Journal(deps.store, fence).intent(
        "r",
        node="r",
        kind="step",
        attempt=1,
        key="k",
        skill="refund@1.0.0",
        input_hash=None,
        now=deps.clock.now(),
    )
    deps.clock.advance(5)  # type: ignore[attr-defined]
    stuck = await drain(deps, run.id)
    assert stuck.status == "needs_attention"
    assert stuck.attention == {"step": "r", "skill": "refund@1.0.0", "reason": "unknown outcome"}
    assert effects_log() == []
    with pytest.raises(ControlError, match="give --step r and either --output JSON"):
        await resume(deps.store, run.id, now=deps.clock.now(), actor="ana")
    await resume(deps.store, run.id, now=deps.clock.now(), actor="ana", step="r", output={"refunded": 10})
    done = await drain(deps, run.id)
    assert done.status == "succeeded"
    assert await read_output(deps.store, done.output_digest) == {"refunded": 10}
    assert effects_log() == []  # never executed by the engine: the person said it happened


async def test_a_retry_guardrail_runs_a_rerunnable_step_again_and_blocks_an_at_most_once_one(
    deps: Deps, make_plan: Any
) -> None:
    retried = make_plan("""
    metadata: {name: retried}
    spec:
      execute: [{id: f, skill: flaky@*, input: {fail_times: 0}}]
      validate: [{name: second, step: f, assert: "output.attempt >= 2", onFail: retry}]
    """)
    ok = await run_to_end(deps, retried, {})
    assert ok.status == "succeeded"
    assert [e["attempt"] for e in effects_log()] == [1, 2]
    once = make_plan("""
    metadata: {name: once-checked}
    spec:
      execute: [{id: r, skill: refund@*, input: {amount: 10}}]
      validate: [{name: never, step: r, assert: "output.refunded > 100", onFail: retry}]
    """)
    blocked = await run_to_end(deps, once, {})
    assert (blocked.status, blocked.error) == (
        "failed",
        "guardrail never blocked r: assert: output.refunded > 100 is false",
    )
    assert len([e for e in effects_log() if e["skill"] == "refund"]) == 1


async def test_retries_wait_as_the_skills_policy_says(deps: Deps, make_plan: Any) -> None:
    plan = make_plan("""
    metadata: {name: backoff}
    spec:
      execute: [{id: f, skill: backoff@*, input: {fail_times: 3}}]
    """)
    run, _ = await start_run(deps, plan, {})
    clock = deps.clock
    started = clock.now()
    turn = asyncio.create_task(Worker(deps, owner="w").drain())
    while not turn.done():  # time moves only when the engine waits: each back-off is seen on the clock
        await asyncio.sleep(0.005)
        clock.advance(0.25)  # type: ignore[attr-defined]
    await turn
    ended = await RunStore(deps.store).get(run.id)
    assert ended is not None and ended.status == "succeeded"
    waits = [r.data["retry_in"] for r in await records(deps.store, run.id) if r.kind == "retry"]
    assert waits == [1.0, 1.5, 1.5]  # base 1s doubling, capped at 1.5s
    assert clock.now() - started >= sum(waits)
    assert [e["attempt"] for e in effects_log()] == [1, 2, 3, 4]


async def test_a_gate_inside_a_loop_holds_one_item_and_the_others_finish(deps: Deps, make_plan: Any) -> None:
    plan = make_plan("""
    metadata: {name: loop}
    spec:
      execute:
        - id: tell
          skill: echo@*
          foreach: "{{ input.to }}"
          parallel: 2
          input: {to: "{{ item }}"}
          approval: {when: "item == 'boss'"}
    """)
    run, _ = await start_run(deps, plan, {"to": ["ana", "boss", "bo"]})
    assert (await drain(deps, run.id)).status == "waiting_approval"
    assert sorted(e["step"] for e in effects_log()) == ["tell[0]", "tell[2]"]  # not cancelled half-way
    [gate] = await Approvals(deps.store).query()
    await Approvals(deps.store).decide(gate.id, approve=True, actor="ana", now=deps.clock.now())
    done = await drain(deps, run.id)
    assert done.status == "succeeded"
    assert sorted(e["step"] for e in effects_log()) == ["tell[0]", "tell[1]", "tell[2]"]  # each once
    assert await read_output(deps.store, done.output_digest) == [
        {"value": {"to": "ana"}},
        {"value": {"to": "boss"}},
        {"value": {"to": "bo"}},
    ]


async def test_an_approval_binds_the_arguments_it_was_shown(deps: Deps, make_plan: Any) -> None:
    from sqlalchemy import update

    from fleetplane.store.tables import pipeline_approvals

    run, _ = await start_run(deps, make_plan(GATED), {"order": "o", "amount": 250})
    await drain(deps, run.id)
    [gate] = await Approvals(deps.store).query()
    # The person was shown other arguments than the step will run with (here: the row says so).
    async with deps.store.engine.begin() as conn:
        await conn.execute(update(pipeline_approvals).values(arguments_hash="0" * 64))
    await Approvals(deps.store).decide(gate.id, approve=True, actor="ana", now=deps.clock.now())
    ended = await drain(deps, run.id)
    assert ended.status == "failed"
    assert ended.error == (
        "approval pay: the arguments now differ from the ones approved (hash "
        f"{value_hash({'amount': 250})[:12]}, approved 000000000000); ask again"
    )
    assert [e["skill"] for e in effects_log()] == ["lookup"]  # the charge never ran
