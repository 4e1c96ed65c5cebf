"""Scheduled benchmark runs: a suite with `schedule: {every: 1d}` is run again once `every` has passed
since its last scheduled run, so its scores form a time series (`fleetplane eval history`) beside the
telemetry's.

`SuiteScheduler.tick()` runs whatever is due now (for cron, or a loop); `serve()` ticks until stopped.
Time comes from an injected clock, so schedules are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fleetplane.evals.results import Run, RunRepository
from fleetplane.evals.runner import run_suite
from fleetplane.evals.suites import LoadedSuite, load_suite
from fleetplane.evals.targets import Target
from fleetplane.manifests.evalsuite import EvalSuite
from fleetplane.manifests.loader import load

log = logging.getLogger(__name__)

TargetFactory = Callable[[LoadedSuite], Target]


def due(suites: Sequence[EvalSuite], last_run: Mapping[str, float], now: float) -> list[EvalSuite]:
    """The scheduled suites whose last scheduled run started `every` or longer ago (or never ran)."""
    out = []
    for suite in suites:
        schedule = suite.spec.schedule
        if schedule is None:
            continue
        last = last_run.get(suite.name)
        if last is None or now - last >= schedule.every:
            out.append(suite)
    return out


class SuiteScheduler:
    def __init__(
        self, fleet: str | Path, repo: RunRepository, make_target: TargetFactory, clock: Callable[[], float]
    ) -> None:
        self.fleet = Path(fleet)
        self.repo = repo
        self.make_target = make_target
        self.clock = clock

    async def tick(self) -> list[Run]:
        """Run every suite that is due, one after another; a suite that fails is logged and skipped."""
        suites = load(self.fleet).of_kind(EvalSuite)
        last = {}
        for suite in suites:
            if suite.spec.schedule is not None:
                started = await self.repo.last_started(suite.name, trigger="schedule")
                if started is not None:
                    last[suite.name] = started
        runs = []
        for suite in due(suites, last, self.clock()):
            loaded = load_suite(self.fleet, suite.name)
            try:
                runs.append(
                    await run_suite(
                        loaded, self.make_target(loaded), self.repo, trigger="schedule", clock=self.clock
                    )
                )
            except Exception:
                log.exception("scheduled run of suite %s failed", suite.name)
        return runs

    async def serve(self, stop: asyncio.Event, poll: float = 60.0) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # a fleet that does not load now may load after the next edit
                log.exception("scheduled eval runs: tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll)
