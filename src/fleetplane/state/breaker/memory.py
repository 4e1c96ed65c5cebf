"""The in-process breaker store: the embedded default, one gateway process.

Each method runs to completion without suspending (a batch awaits only these methods, which never
suspend), so asyncio tasks never see a half-made change. The
state machine here and the Lua script in `lua.py` are two spellings of one design (docs/breakers-engine.md);
the shared test suite holds them to the same answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from fleetplane.state.breaker.counters import MAX_COUNTERS, Counters
from fleetplane.state.breaker.model import (
    CLOSED,
    Arrived,
    BreakerSnapshot,
    BreakerSpec,
    Status,
    Step,
    Trigger,
    TripRecord,
    Verdict,
)
from fleetplane.state.breaker.reasons import reason
from fleetplane.state.breaker.window import SlotWindow
from fleetplane.state.clock import SYSTEM_CLOCK, Clock

MAX_LEVEL = 60  # 2**60 · open_for is past any max_open_for; stops the float from overflowing
SWEEP_EVERY = 1024  # writes between sweeps of idle breakers, so memory follows the live fleet


@dataclass
class _Breaker:
    spec: BreakerSpec
    expires: float  # forgotten after this, untouched (the Redis store keeps the same time)
    status: Status = "closed"
    opened_at: float = 0.0
    open_dur: float = 0.0
    level: int = 0
    trips: int = 0
    good: int = 0
    closed_at: float | None = None
    record: TripRecord | None = None
    probes: list[float] = field(default_factory=list)  # admission times of probes in flight, oldest first
    windows: dict[str, SlotWindow] = field(default_factory=dict)


def check_observation(amount: float, sample: float) -> None:
    if not (math.isfinite(amount) and amount >= 0 and math.isfinite(sample) and sample >= 0):
        raise ValueError(f"amount and sample must be finite and not negative, got {amount!r}, {sample!r}")


class MemoryBreakerStore:
    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, max_counters: int = MAX_COUNTERS) -> None:
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}
        self._writes = 0
        self.counters = Counters(max_entries=max_counters)  # `count` and `growth` steps

    # -- state ---------------------------------------------------------------------------------------

    def _lookup(self, key: str, now: float) -> _Breaker | None:
        b = self._breakers.get(key)
        if b is not None and now > b.expires:
            # The Redis store lets the same breaker expire; forgetting it here keeps the two alike.
            del self._breakers[key]
            return None
        if b is not None and b.status == "open" and now >= b.opened_at + b.open_dur:
            b.status, b.good, b.probes = "half_open", 0, []
        return b

    def _touch(self, b: _Breaker, now: float) -> None:
        b.expires = now + b.spec.idle_ttl
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            for key in list(self._breakers):
                self._lookup(key, now)

    def _open(self, b: _Breaker, now: float, record: TripRecord) -> None:
        recently_closed = b.closed_at is not None and now - b.closed_at < b.spec.max_open_for
        b.level = min(b.level + 1, MAX_LEVEL) if b.status == "half_open" or recently_closed else 0
        b.status, b.opened_at, b.record = "open", now, record
        b.open_dur = min(b.spec.max_open_for, b.spec.open_for * 2**b.level)
        b.trips += 1
        # Probes and close progress belong to one opening; windows restart so that half-open probes
        # are judged on what they do, not on the burst that tripped the breaker.
        b.good, b.probes, b.windows = 0, [], {}

    def _close(self, b: _Breaker, now: float) -> None:
        b.status, b.closed_at, b.record = "closed", now, None
        b.good, b.probes, b.windows = 0, [], {}

    def _expire_probes(self, b: _Breaker, now: float) -> None:
        b.probes = [t for t in b.probes if t >= now - b.spec.probe_timeout]

    def _verdict(self, b: _Breaker, now: float, *, probe: bool = False) -> Verdict:
        if b.status == "closed":
            return CLOSED
        why = reason(b.record) if b.record else None
        trigger = b.record.trigger if b.record else None
        if b.status == "open":
            return Verdict("open", False, why, trigger, b.opened_at + b.open_dur - now)
        if probe:
            return Verdict("half_open", True, why, trigger, None, probe=True)
        wait = 0.0
        if len(b.probes) >= b.spec.half_open_probes:
            wait = min(b.spec.open_for, b.probes[0] + b.spec.probe_timeout - now)
        return Verdict("half_open", False, why, trigger, wait)

    # -- the protocol --------------------------------------------------------------------------------

    async def check(self, spec: BreakerSpec) -> Verdict:
        now = self._clock.now()
        b = self._lookup(spec.key, now)
        if b is None:
            return CLOSED
        b.spec = spec
        if b.status == "half_open":
            self._expire_probes(b, now)
            if len(b.probes) < spec.half_open_probes:
                b.probes.append(now)
                self._touch(b, now)
                return self._verdict(b, now, probe=True)
        return self._verdict(b, now)

    async def observe(
        self,
        spec: BreakerSpec,
        trigger: str,
        amount: float,
        *,
        bad: bool = False,
        sample: float = 1.0,
        probe: bool = False,
    ) -> Verdict:
        t = spec.trigger(trigger)
        check_observation(amount, sample)
        now = self._clock.now()
        b = self._lookup(spec.key, now)
        if b is None:
            b = self._breakers[spec.key] = _Breaker(spec=spec, expires=now + spec.idle_ttl)
        b.spec = spec
        if b.status == "open":
            # Refused traffic is not counted: the window after an opening starts from the probes.
            return self._verdict(b, now)
        window = b.windows.get(t.name)
        if window is None or window.window != t.window:
            window = b.windows[t.name] = SlotWindow(t.window)
        window.add(now, t.kind, amount, bad, sample)
        reading = window.read(now, t.kind)
        self._touch(b, now)
        judged_probe = probe and b.status == "half_open"
        if judged_probe and t.kind == "ratio" and bad and b.record is not None:
            # A ratio probe is judged on itself: one bad answer fails it, min_samples or not, just as
            # probe_done(good=False) would; the reason stays the trip that opened the breaker.
            self._open(b, now, replace(b.record, cause="probe"))
        elif reading.passes(t):
            self._open(b, now, self._record(t, reading.value, reading.samples))
        return self._verdict(b, now, probe=judged_probe)

    async def probe_done(self, spec: BreakerSpec, *, good: bool) -> Verdict:
        now = self._clock.now()
        b = self._lookup(spec.key, now)
        if b is None:
            return CLOSED
        b.spec = spec
        if b.status != "half_open":
            return self._verdict(b, now)
        self._expire_probes(b, now)
        if not b.probes:
            # Nothing in flight: a late report from an earlier opening, or a lease that ran out.
            return self._verdict(b, now)
        b.probes.pop(0)
        self._touch(b, now)
        if not good:
            assert b.record is not None  # a half-open breaker always has the trip that opened it
            self._open(b, now, replace(b.record, cause="probe"))
        else:
            b.good += 1
            if b.good >= spec.close_after:
                self._close(b, now)
        return self._verdict(b, now)

    async def arrive(self, items: Sequence[tuple[BreakerSpec, Sequence[Step]]]) -> list[Arrived]:
        out: list[Arrived] = []
        for spec, steps in items:
            verdict = await self.check(spec)
            granted = verdict.admitted and verdict.probe
            if verdict.admitted:
                for step in steps:
                    verdict = await self._step(spec, step, probe=granted) or verdict
                    if not verdict.admitted:
                        break
            out.append(Arrived(granted, verdict))
            if not verdict.admitted:
                break
        return out

    async def record(self, items: Sequence[tuple[BreakerSpec, Sequence[Step]]]) -> list[list[Verdict]]:
        return [
            [await self._step(spec, step, probe=step.probe) or CLOSED for step in steps]
            for spec, steps in items
        ]

    async def _step(self, spec: BreakerSpec, step: Step, *, probe: bool) -> Verdict | None:
        """The step's verdict; None when it observed nothing (a conversation's first turn)."""
        if step.op == "probe_done":
            return await self.probe_done(spec, good=step.good)
        amount = step.amount
        if step.op in ("count", "growth"):
            now = self._clock.now()
            key = f"{spec.key}|{step.trigger}|{step.member}"
            if step.op == "count":
                amount = float(self.counters.incr(key, step.ttl, now))
            else:
                previous = self.counters.swap(key, step.amount, step.ttl, now)
                if previous is None:
                    return None  # a first turn: nothing grew
                amount = max(0.0, step.amount - previous)
        return await self.observe(spec, step.trigger, amount, bad=step.bad, sample=step.sample, probe=probe)

    async def reset(self, key: str) -> bool:
        return self._breakers.pop(key, None) is not None

    async def snapshot(self, keys: Sequence[str] | None = None) -> list[BreakerSnapshot]:
        now = self._clock.now()
        wanted = sorted(self._breakers) if keys is None else list(keys)
        out: list[BreakerSnapshot] = []
        for key in wanted:
            b = self._lookup(key, now)
            if b is None:
                if keys is not None:
                    out.append(BreakerSnapshot(key, "closed", None, None, None, None, 0, {}))
                continue
            values = {}
            for t in b.spec.triggers:
                window = b.windows.get(t.name)
                values[t.name] = 0.0
                if window is not None and window.window == t.window:
                    values[t.name] = window.read(now, t.kind).value
            verdict = self._verdict(b, now)
            out.append(
                BreakerSnapshot(
                    key=key,
                    status=b.status,
                    reason=verdict.reason,
                    trigger=verdict.trigger,
                    opened_at=None if b.status == "closed" else b.opened_at,
                    retry_after=verdict.retry_after if b.status == "open" else None,
                    trips=b.trips,
                    values=values,
                )
            )
        return out

    async def close(self) -> None:
        self._breakers.clear()
        self.counters.clear()

    @staticmethod
    def _record(t: Trigger, value: float, samples: float) -> TripRecord:
        return TripRecord("trigger", t.name, t.kind, value, t.threshold, t.window, samples)
