"""Hot-swap under load with the real skills catalog: two workers run pipelines continuously while a new
version is promoted and then rolled back. Runs in flight finish on the version they pinned; runs started
after each flip get the version serving then; no run fails."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetplane.pipelines.approvals import Approvals
from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.engine import start_run
from fleetplane.pipelines.runs import RunRecord, RunStore
from fleetplane.pipelines.skillapi import default_catalogs
from fleetplane.pipelines.worker import Worker
from fleetplane.skills import SkillRegistry
from fleetplane.store.db import Store
from fleetplane.store.tables import pipeline_steps

pytestmark = pytest.mark.anyio

SKILL = Path(__file__).parents[2] / "examples/fleet/skills/search-docs"

ASK = """
metadata: {name: ask}
spec:
  execute:
    - {id: first, skill: search-docs@^1, input: {query: "{{ input.q }}"}}
    - id: second
      skill: search-docs@^1
      needs: [first]
      input: {query: "refund"}
      approval: {when: "input.hold"}
"""


async def test_promote_and_rollback_while_runs_are_in_flight(
    store: Store, make_plan: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("FLEETPLANE_HOME", str(home))
    newer = tmp_path / "v11" / "search-docs"
    shutil.copytree(SKILL, newer)
    for name in ("SKILL.md", "skill.yaml"):
        (newer / name).write_text((newer / name).read_text().replace('version: "1.0.0"', 'version: "1.1.0"'))
    registry = SkillRegistry(store, home)
    await registry.publish(SKILL, actor="test")
    await registry.publish(newer, actor="test")
    await registry.promote("search-docs", "1.0.0", actor="test")
    deps = Deps(store=store, catalogs=default_catalogs(store, str(home)), lease_ttl=30)
    plan = make_plan(ASK)
    workers = [Worker(deps, owner=f"w{i}", poll=0.01) for i in range(2)]
    serving = [asyncio.create_task(w.serve()) for w in workers]
    try:
        held = [(await start_run(deps, plan, {"q": f"late parcel {i}", "hold": True}))[0] for i in range(3)]
        before = [(await start_run(deps, plan, {"q": f"broken {i}", "hold": False}))[0] for i in range(3)]
        await registry.promote("search-docs", "1.1.0", actor="test")  # the held runs are in flight
        during = [(await start_run(deps, plan, {"q": f"invoice {i}", "hold": False}))[0] for i in range(3)]
        approvals = Approvals(store)
        for gate in await waiting(approvals, len(held)):
            await approvals.decide(gate.id, approve=True, actor="ana", now=deps.clock.now())
        await registry.rollback("search-docs", actor="test")
        after = [(await start_run(deps, plan, {"q": f"password {i}", "hold": False}))[0] for i in range(3)]
        ended = await finished(store, [r.id for r in held + before + during + after])
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.gather(*serving)
        await deps.http.aclose()
    assert {r.status for r in ended.values()} == {"succeeded"}
    expected = {r.id: "1.0.0" for r in held + before + after} | {r.id: "1.1.0" for r in during}
    for run_id, version in expected.items():
        assert ended[run_id].lock["search-docs@^1"]["version"] == version
        assert await versions_run(store, run_id) == {f"search-docs@{version}"}


async def finished(store: Store, ids: list[str]) -> dict[str, RunRecord]:
    runs = RunStore(store)
    for _ in range(2000):
        found = {i: await runs.get(i) for i in ids}
        if all(r is not None and r.finished for r in found.values()):
            return {i: r for i, r in found.items() if r is not None}
        await asyncio.sleep(0.02)
    raise AssertionError("the runs did not finish")


async def waiting(approvals: Approvals, count: int) -> list[Any]:
    for _ in range(2000):
        pending = await approvals.query()
        if len(pending) >= count:
            return pending
        await asyncio.sleep(0.02)
    raise AssertionError("the held runs never reached their gate")


async def versions_run(store: Store, run_id: str) -> set[str]:
    query = select(pipeline_steps.c.skill).where(pipeline_steps.c.run_id == run_id)
    async with store.engine.connect() as conn:
        return {row.skill for row in (await conn.execute(query)).all()}
