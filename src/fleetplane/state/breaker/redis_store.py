"""The Redis breaker store: one state shared by every gateway replica, one script call per operation.

Time comes from the Redis server (`TIME`, inside the script) so replicas never compare their own
clocks; a `Clock` given to the constructor replaces it (tests move time by hand).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from fleetplane.state.breaker.lua import SCRIPT
from fleetplane.state.breaker.memory import check_observation
from fleetplane.state.breaker.model import (
    CLOSED,
    Arrived,
    BreakerSnapshot,
    BreakerSpec,
    Status,
    Step,
    TripRecord,
    Verdict,
)
from fleetplane.state.breaker.reasons import reason
from fleetplane.state.breaker.store import BreakerStoreUnavailable
from fleetplane.state.clock import Clock

SNAPSHOT_BATCH = 64  # script calls in flight at once while listing every breaker


def _num(x: float) -> str:
    return repr(float(x))  # the shortest text that reads back as the same double (Lua's tonumber too)


@functools.lru_cache(maxsize=4096)
def _spec_args(spec: BreakerSpec) -> tuple[str, ...]:
    triggers = json.dumps([[t.name, t.kind, t.window] for t in spec.triggers], separators=(",", ":"))
    return (
        _num(spec.open_for),
        _num(spec.max_open_for),
        str(spec.half_open_probes),
        str(spec.close_after),
        _num(spec.probe_timeout),
        _num(spec.idle_ttl),
        triggers,
    )


def _record(row: Sequence[str]) -> TripRecord | None:
    cause, name, kind, value, threshold, window, samples = row
    if not cause:
        return None
    return TripRecord(
        cause=cast(Any, cause),
        trigger=name,
        kind=cast(Any, kind),
        value=float(value),
        threshold=float(threshold),
        window=float(window),
        samples=float(samples),
    )


def _verdict(row: Sequence[str]) -> Verdict:
    status, admitted, probe, retry_after = row[:4]
    record = _record(row[4:11])
    return Verdict(
        status=cast(Status, status),
        admitted=admitted == "1",
        reason=reason(record) if record else None,
        trigger=record.trigger if record else None,
        retry_after=float(retry_after) if retry_after else None,
        probe=probe == "1",
    )


class RedisBreakerStore:
    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        prefix: str = "fleetplane:",
        timeout: float = 0.5,
        connect_timeout: float = 1.0,
    ) -> None:
        import redis.asyncio as redis

        # Breakers are checked on every request's path and fail open: a Redis that does not answer within
        # `timeout` is BreakerStoreUnavailable, not seconds of added latency. Connecting gets longer because
        # a burst opening many connections at once is slow on a busy host without anything being wrong.
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=connect_timeout, socket_timeout=timeout, decode_responses=True
        )
        self._script = self._redis.register_script(SCRIPT)
        self._clock = clock
        self._prefix = prefix

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}breaker:{key}"
        return [base, base + ":w", base + ":p", f"{self._prefix}breakers"]

    async def _call(self, op: str, key: str, *args: str) -> Any:
        now = "" if self._clock is None else _num(self._clock.now())
        return await _guard(lambda: self._script(keys=self._keys(key), args=[op, now, key, *args]))

    async def check(self, spec: BreakerSpec) -> Verdict:
        return _verdict(await self._call("check", spec.key, *_spec_args(spec)))

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
        row = await self._call(
            "observe",
            spec.key,
            *_spec_args(spec),
            t.name,
            t.kind,
            _num(t.window),
            _num(t.threshold),
            str(t.min_samples),
            _num(amount),
            "1" if bad else "0",
            _num(sample),
            "1" if probe else "0",
        )
        return _verdict(row)

    async def probe_done(self, spec: BreakerSpec, *, good: bool) -> Verdict:
        return _verdict(await self._call("probe_done", spec.key, *_spec_args(spec), "1" if good else "0"))

    def _batch(
        self, op: str, items: Sequence[tuple[BreakerSpec, Sequence[Step]]]
    ) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of one `arrive` / `record` script call (layout in lua.py)."""
        keys = [f"{self._prefix}breakers"]
        args = [op, "" if self._clock is None else _num(self._clock.now()), str(len(items))]
        for spec, steps in items:
            args += [str(len(keys) + 1), spec.key, *_spec_args(spec), str(len(steps))]
            keys += self._keys(spec.key)[:3]
            for step in steps:
                if step.op == "probe_done":
                    args += ["probe_done", "1" if step.good else "0"]
                    continue
                t = spec.trigger(step.trigger)
                check_observation(step.amount, step.sample)
                counter = ttl = ""
                if step.op in ("count", "growth"):
                    keys.append(f"{self._prefix}breaker:{spec.key}:c:{t.name}:{step.member}")
                    counter, ttl = str(len(keys)), str(max(1, math.ceil(step.ttl * 1000)))
                args += [
                    step.op,
                    t.name,
                    t.kind,
                    _num(t.window),
                    _num(t.threshold),
                    str(t.min_samples),
                    _num(step.amount),
                    "1" if step.bad else "0",
                    _num(step.sample),
                    "1" if step.probe else "0",
                    counter,
                    ttl,
                ]
        return keys, args

    async def arrive(self, items: Sequence[tuple[BreakerSpec, Sequence[Step]]]) -> list[Arrived]:
        if not items:
            return []
        keys, args = self._batch("arrive", items)
        rows = await _guard(lambda: self._script(keys=keys, args=args))
        return [Arrived(row[0] == "1", _verdict(row[1:])) for row in rows]

    async def record(self, items: Sequence[tuple[BreakerSpec, Sequence[Step]]]) -> list[list[Verdict]]:
        if not any(steps for _, steps in items):
            return [[] for _ in items]
        keys, args = self._batch("record", items)
        rows = await _guard(lambda: self._script(keys=keys, args=args))
        return [[_verdict(row) if row else CLOSED for row in group] for group in rows]

    async def reset(self, key: str) -> bool:
        return bool(await self._call("reset", key))

    async def snapshot(self, keys: Sequence[str] | None = None) -> list[BreakerSnapshot]:
        wanted = list(keys) if keys is not None else sorted(await _guard(self._all_keys))
        out: list[BreakerSnapshot] = []
        for start in range(0, len(wanted), SNAPSHOT_BATCH):
            batch = wanted[start : start + SNAPSHOT_BATCH]
            rows = await asyncio.gather(*(self._call("snapshot", key) for key in batch))
            for key, row in zip(batch, rows, strict=True):
                if row:
                    out.append(_snapshot(key, row))
                elif keys is not None:
                    out.append(BreakerSnapshot(key, "closed", None, None, None, None, 0, {}))
        return out

    async def _all_keys(self) -> set[str]:
        return cast(set[str], await self._redis.smembers(f"{self._prefix}breakers"))

    async def close(self) -> None:
        await self._redis.aclose()


def _snapshot(key: str, row: Sequence[str]) -> BreakerSnapshot:
    status, opened_at, retry_after, trips = row[:4]
    record = _record(row[4:11])
    pairs = row[11:]
    return BreakerSnapshot(
        key=key,
        status=cast(Status, status),
        reason=reason(record) if record else None,
        trigger=record.trigger if record else None,
        opened_at=float(opened_at) if opened_at else None,
        retry_after=float(retry_after) if retry_after else None,
        trips=int(float(trips)),
        values={pairs[i]: float(pairs[i + 1]) for i in range(0, len(pairs), 2)},
    )


async def _guard(call: Callable[[], Awaitable[Any]]) -> Any:
    """Any failure to reach Redis becomes `BreakerStoreUnavailable`; a script error stays what it is."""
    from redis import exceptions as rx

    try:
        return await call()
    except (
        rx.ConnectionError,  # includes refused, reset, auth and "loading" errors
        rx.TimeoutError,
        rx.ReadOnlyError,  # a replica after failover: the primary is gone for now
        rx.OutOfMemoryError,
        rx.MasterDownError,
        rx.TryAgainError,
        OSError,
        TimeoutError,
    ) as exc:
        raise BreakerStoreUnavailable(f"breaker store unreachable: {exc}") from exc
