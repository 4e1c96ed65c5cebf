"""Scheduled suites run when due (an injected clock, no sleeping) and form a time series."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fleetplane.evals.results import RunRepository
from fleetplane.evals.schedule import SuiteScheduler, due
from fleetplane.evals.suites import LoadedSuite, load_suite
from fleetplane.evals.targets import CallableTarget
from fleetplane.store.db import Store

SUITES = """\
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: daily}
spec:
  target: {pipeline: echo}
  schedule: {every: 1d}
  dimensions: [{name: q, scorers: [{type: exact}]}]
  cases: [{id: a, input: hi, expected: hi}, {id: b, input: yo, expected: no}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: adhoc}
spec:
  target: {pipeline: echo}
  dimensions: [{name: q, scorers: [{type: exact}]}]
  cases: [{id: a, input: hi, expected: hi}]
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_due_follows_every(tmp_path: Path) -> None:
    (tmp_path / "suites.yaml").write_text(SUITES)
    daily, adhoc = (load_suite(tmp_path, name).manifest for name in ("daily", "adhoc"))
    assert [s.name for s in due([daily, adhoc], {}, 0.0)] == ["daily"]
    assert due([daily], {"daily": 0.0}, 86_399.0) == []
    assert [s.name for s in due([daily], {"daily": 0.0}, 86_400.0)] == ["daily"]


def test_the_scheduler_runs_due_suites_and_builds_a_history(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "suites.yaml").write_text(SUITES)
    clock = Clock()

    async def echo(value: Any) -> Any:
        return value

    def make_target(suite: LoadedSuite) -> CallableTarget:
        return CallableTarget(f"pipeline:{suite.manifest.spec.target.name}", echo)

    async def scenario() -> None:
        store = await Store.open(sqlite_url)
        try:
            repo = RunRepository(store)
            scheduler = SuiteScheduler(tmp_path, repo, make_target, clock)
            first = await scheduler.tick()
            assert [(r.suite, r.trigger, r.started_at) for r in first] == [("daily", "schedule", 1_000_000.0)]
            clock.now += 3600
            assert await scheduler.tick() == []
            clock.now += 86_400
            second = await scheduler.tick()
            assert [r.suite for r in second] == ["daily"]
            history = await repo.runs("daily")
            assert [r.started_at for r in history] == [1_000_000.0, 1_090_000.0]
            assert [r.summary["dimensions"]["q"]["pass_rate"] for r in history if r.summary] == [0.5, 0.5]
            assert await repo.runs("adhoc") == []
            stop = asyncio.Event()
            stop.set()
            await scheduler.serve(stop)  # a stopped loop ticks once and returns
            assert len(await repo.runs("daily")) == 2  # not due yet: nothing ran
        finally:
            await store.close()

    asyncio.run(scenario())
