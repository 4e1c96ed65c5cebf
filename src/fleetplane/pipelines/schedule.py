"""Scheduled triggers: `every: 5m` or a five-field `cron` in a timezone. Each due slot starts one run with
the dedupe key `schedule:<slot time>`, so any number of server replicas ticking at once start it once.

Slots are counted from when the scheduler started: a server that was down does not replay the slots it
missed (a run per missed slot is rarely what anyone wants after an outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fleetplane.manifests.pipeline import Schedule
from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.engine import start_run
from fleetplane.pipelines.plan import Plan, compile_plan
from fleetplane.pipelines.sources import applied_pipelines, load_plans

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))  # weekday 0 and 7 are both Sunday
FIELDS = ("minute", "hour", "day of month", "month", "day of week")


class CronError(ValueError):
    pass


def parse_cron(text: str) -> tuple[frozenset[int], ...]:
    """The allowed values of each of the five fields; `CronError` says which field is wrong."""
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"cron {text!r} has {len(parts)} fields; expected 5 (minute hour day month weekday)")
    return tuple(
        _field(part, name, low, high) for part, name, (low, high) in zip(parts, FIELDS, _RANGES, strict=True)
    )


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for piece in text.split(","):
        span, _, step_text = piece.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if span == "*":
                start, end = low, high
            elif "-" in span:
                start, end = (int(x) for x in span.split("-", 1))
            else:
                start = end = int(span)
        except ValueError:
            raise CronError(f"cron {name} field {text!r}: expected *, N, N-M, lists and /step") from None
        if step < 1 or not (low <= start <= high and low <= end <= high and start <= end):
            raise CronError(f"cron {name} field {text!r}: values must lie in {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(v % 7 for v in values) if name == "day of week" else frozenset(values)


def due_slot(schedule: Schedule, now: float) -> float | None:
    """The slot (seconds) that `now` falls in, if the schedule fires in it."""
    if schedule.every is not None:
        return float(int(now // schedule.every) * schedule.every)
    assert schedule.cron is not None
    minute, hour, day, month, weekday = parse_cron(schedule.cron)
    at = datetime.fromtimestamp(now, ZoneInfo(schedule.timezone)).replace(second=0, microsecond=0)
    matches = (
        at.minute in minute
        and at.hour in hour
        and at.month in month
        and at.day in day
        and (at.isoweekday() % 7) in weekday
    )
    return at.timestamp() if matches else None


class Scheduler:
    def __init__(self, deps: Deps, *, directory: str | Path | None = None, poll: float = 15.0) -> None:
        self.deps, self.directory, self.poll = deps, directory, poll
        self.since = deps.clock.now()
        self._stopping = asyncio.Event()

    async def plans(self) -> list[Plan]:
        if self.directory is not None:
            return list(load_plans(self.directory).values())
        return [compile_plan(p) for p in (await applied_pipelines(self.deps.store)).values()]

    async def tick(self) -> list[str]:
        """Start the run of every schedule due now (once per slot); the ids of runs started."""
        now = self.deps.clock.now()
        started = []
        for plan in await self.plans():
            schedule = plan.spec.trigger.schedule
            if schedule is None:
                continue
            slot = due_slot(schedule, now)
            if slot is None or slot < self.since:
                continue
            key = f"schedule:{datetime.fromtimestamp(slot).astimezone().isoformat()}"
            run, created = await start_run(
                self.deps, plan, dict(schedule.input), trigger="schedule", dedupe_key=key
            )
            if created:
                started.append(run.id)
        return started

    async def serve(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:  # a bad pipeline or a store hiccup must not stop every other schedule
                logging.getLogger(__name__).exception("pipeline scheduler: a tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.poll)

    def stop(self) -> None:
        self._stopping.set()
