"""The engine in process: stages in order, the journal replays, retries, approvals, guardrails, sinks."""

from __future__ import annotations

from typing import Any

import pytest
from fakeskills import effects_log

from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.engine import start_run
from fleetplane.pipelines.journal import idempotency_key, read_output
from fleetplane.pipelines.reasoning import records
from fleetplane.pipelines.runs import RunStore
from fleetplane.pipelines.worker import Worker

pytestmark = pytest.mark.anyio

BASIC = """
metadata: {name: basic}
spec:
  context:
    values: {big: "{{ input.amount > 100 }}"}
  route:
    choices: {small: charge@^1, big: refund@^1}
    rules:
      - {when: context.big, choose: big, why: large amounts are refunds}
    default: small
  execute:
    - {id: look, skill: lookup@^1, input: {order_id: "{{ input.order }}"}}
    - id: pay
      skill: route
      needs: [look]
      when: steps.look.output.refundable
      input: {amount: "{{ input.amount }}"}
    - id: tell
      skill: echo@*
      needs: [look, pay]
      foreach: "{{ steps.look.output.contacts }}"
      input: {to: "{{ item }}", n: "{{ index }}"}
  sink:
    - name: rows
      table: {name: payments, row: {paid: "{{ steps.pay.output }}"}}
  output: "{{ steps.pay.output }}"
"""


async def run_to_end(deps: Deps, plan: Any, input: Any, **options: Any) -> Any:
    run, _ = await start_run(deps, plan, input, **options)
    await Worker(deps, owner="w1").drain()
    ended = await RunStore(deps.store).get(run.id)
    assert ended is not None
    return ended


async def test_a_run_goes_through_every_stage(deps: Deps, make_plan: Any) -> None:
    plan = make_plan(BASIC)
    run = await run_to_end(deps, plan, {"order": "o-1", "amount": 50})
    assert run.status == "succeeded", run.error
    assert run.plan_digest == plan.digest
    assert run.lock["charge@^1"] == {"name": "charge", "version": "1.0.0", "digest": "sha256:charge-1.0.0"}
    assert await read_output(deps.store, run.output_digest) == {"charged": 50}
    assert {e["key"] for e in effects_log() if e["skill"] == "charge"} == {idempotency_key(run.id, "pay")}
    assert [e["skill"] for e in effects_log()] == ["lookup", "charge", "echo", "echo"]
    assert [e["step"] for e in effects_log()][2:] == ["tell[0]", "tell[1]"]
    kinds = [(r.kind, r.data.get("choice") or r.data.get("when")) for r in await records(deps.store, run.id)]
    assert ("route", "small") in kinds
    assert ("condition", "steps.look.output.refundable") in kinds


async def test_the_router_records_its_rule_and_rationale(deps: Deps, make_plan: Any) -> None:
    run = await run_to_end(deps, make_plan(BASIC), {"order": "o-2", "amount": 500})
    assert run.status == "succeeded", run.error
    route = [r.data for r in await records(deps.store, run.id) if r.kind == "route"]
    assert route == [
        {"choice": "big", "by": "rule", "why": "large amounts are refunds", "skill": "refund@^1"}
    ]
    assert [e["skill"] for e in effects_log()][:2] == ["lookup", "refund"]


async def test_a_finished_run_replays_and_runs_nothing_again(deps: Deps, make_plan: Any) -> None:
    run = await run_to_end(deps, make_plan(BASIC), {"order": "o-1", "amount": 50})
    before = len(effects_log())
    runs = RunStore(deps.store)
    assert await runs.requeue(run.id, now=deps.clock.now(), statuses=("succeeded",))
    await Worker(deps, owner="w2").drain()
    again = await runs.get(run.id)
    assert again is not None and again.status == "succeeded"
    assert len(effects_log()) == before
