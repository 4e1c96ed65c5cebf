"""The journal's own promises: outputs capped and redacted, retention, cancellation stops a run."""

from __future__ import annotations

from typing import Any

import pytest
from fakeskills import effects_log
from sqlalchemy import func, select
from test_engine import run_to_end
from test_governance import GATED, drain

from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.control import ControlError, cancel
from fleetplane.pipelines.engine import start_run
from fleetplane.pipelines.journal import Journal, prune, read_output
from fleetplane.pipelines.runs import Fence, LeaseLost, RunStore
from fleetplane.store.db import Store
from fleetplane.store.tables import pipeline_outputs, pipeline_steps

pytestmark = pytest.mark.anyio

ECHO = """
metadata: {name: echoes}
spec:
  journal: {maxOutputBytes: 2048}
  execute: [{id: e, skill: echo@*, input: {text: "{{ input.text }}"}}]
"""


async def test_outputs_are_redacted_and_capped(deps: Deps, make_plan: Any) -> None:
    ok = await run_to_end(deps, make_plan(ECHO), {"text": "write to ana@example.com"})
    assert await read_output(deps.store, ok.output_digest) == {"value": {"text": "write to [EMAIL]"}}
    big = await run_to_end(deps, make_plan(ECHO), {"text": "x" * 3000})
    assert big.status == "failed"
    assert big.error == (
        "step e: its output is 3021 bytes, over the journal's cap of 2048 bytes "
        "(spec.journal.maxOutputBytes); return a reference to the data instead of the data"
    )


async def count_outputs(deps: Deps) -> int:
    async with deps.store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(pipeline_outputs))).scalar_one())


async def test_retention_drops_old_journals_and_unreferenced_outputs(deps: Deps, make_plan: Any) -> None:
    plan = make_plan(ECHO + '  output: "{{ steps.e.output.value.text }}"\n')
    old = await run_to_end(deps, plan, {"text": "old"})
    deps.clock.advance(3600)  # type: ignore[attr-defined]
    new = await run_to_end(deps, plan, {"text": "new"})
    assert await count_outputs(deps) == 4  # each run: its step's output and its own
    assert await prune(deps.store, before=deps.clock.now() - 60) == 1
    async with deps.store.engine.connect() as conn:
        steps = (await conn.execute(select(pipeline_steps.c.run_id))).scalars().all()
    assert steps == [new.id]
    assert await count_outputs(deps) == 3  # the old step's output went; the old run's own stays with its row
    kept = await RunStore(deps.store).get(old.id)
    assert kept is not None and kept.status == "succeeded"  # the run row stays for history


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
async def test_an_old_output_written_again_survives_retention(
    dialect: str, request: pytest.FixtureRequest
) -> None:
    # A step whose output equals an old, no longer referenced one writes the output row, then its journal
    # row; retention running between the two must not drop the output (the step would point at nothing).
    url = request.getfixturevalue("sqlite_url" if dialect == "sqlite" else "postgres_url")
    store = await Store.open(url)
    try:
        fence = Fence("r-1", "w", 0)
        journal = Journal(store, fence)
        digest = await journal.store_output({"status": "sent"}, now=1000.0)
        assert await journal.store_output({"status": "sent"}, now=5000.0) == digest  # the same content again
        assert await prune(store, before=4000.0) == 0
        assert await read_output(store, digest) == {"status": "sent"}
        async with store.engine.connect() as conn:
            touched = select(pipeline_outputs.c.created_at).where(pipeline_outputs.c.digest == digest)
            assert (await conn.execute(touched)).scalar_one() == 5000.0
        await journal.store_output({"status": "sent"}, now=2000.0)  # an older write never moves it back
        assert await prune(store, before=4000.0) == 0 and await count_outputs_in(store) == 1
        assert await prune(store, before=6000.0) == 0 and await count_outputs_in(store) == 0
    finally:
        await store.close()


async def count_outputs_in(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(pipeline_outputs))).scalar_one())


async def test_cancel_stops_a_run_and_its_worker_writes_nothing_more(deps: Deps, make_plan: Any) -> None:
    run, _ = await start_run(deps, make_plan(GATED), {"order": "o", "amount": 250})
    await drain(deps, run.id)
    cancelled = await cancel(deps.store, run.id, now=deps.clock.now(), actor="ana", reason="duplicate ticket")
    assert (cancelled.status, cancelled.error) == ("cancelled", "cancelled by ana: duplicate ticket")
    with pytest.raises(ControlError, match=f"run {run.id} already cancelled"):
        await cancel(deps.store, run.id, now=deps.clock.now(), actor="ana")
    second, _ = await start_run(deps, make_plan(GATED), {"order": "p", "amount": 5})
    fence = await RunStore(deps.store).acquire(second.id, "w1", now=deps.clock.now(), ttl=60)
    assert fence is not None
    await cancel(deps.store, second.id, now=deps.clock.now(), actor="ana")
    with pytest.raises(LeaseLost):
        await Journal(deps.store, fence).commit("look", {"x": 1}, now=deps.clock.now())
    assert [e["skill"] for e in effects_log()] == ["lookup"]  # only the first run's step before its gate


async def test_a_run_whose_pinned_plan_was_altered_fails_instead_of_running(
    deps: Deps, make_plan: Any
) -> None:
    from sqlalchemy import update

    from fleetplane.store.tables import pipeline_plans

    plan = make_plan(ECHO)
    run, _ = await start_run(deps, plan, {"text": "x"})
    tampered = {**plan.document(), "order": ["e", "e"]}
    async with deps.store.engine.begin() as conn:
        await conn.execute(
            update(pipeline_plans).where(pipeline_plans.c.digest == plan.digest).values(plan=tampered)
        )
    ended = await drain(deps, run.id)
    assert ended.status == "failed"
    assert ended.error.startswith(f"the stored plan {plan.digest} was altered (its content hashes to ")
    assert effects_log() == []
