"""The wire format between Python and the quota scripts. Numbers travel packed as little-endian doubles
(`struct` on both sides), which round-trip exactly and cost the Lua side no string parsing; strings that
the scripts only store (limit descriptions) travel as one string.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

from fleetplane.state.quota.model import (
    CHARGED_METRICS,
    Admitted,
    CalendarWindow,
    Charge,
    Denied,
    Limit,
    SlidingWindow,
)
from fleetplane.state.quota.periods import PeriodCache

LIMIT = struct.Struct("<BBddddd")  # metric, kind, limit, four geometry fields: see scripts/reservations.lua
CHARGE = struct.Struct("<ddddd")
REFUSAL = struct.Struct("<dddd")  # used, reserved, requested, retry-after (-1 = never)
METRIC_CODES = {m: i + 1 for i, m in enumerate(CHARGED_METRICS)}  # a concurrency limit's metric is 0
SLIDING, CALENDAR, CONCURRENT = 1, 2, 3
RS = "\x1e"


def number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def charge_arg(charge: Charge) -> bytes:
    return CHARGE.pack(*(float(getattr(charge, m)) for m in CHARGED_METRICS))


def describe(limit: Limit) -> str:
    """The limit as JSON, kept in the reservation so a later `extend` can name the limit that refused."""
    w = limit.window
    window: dict[str, Any] | None
    if isinstance(w, SlidingWindow):
        window = {"seconds": w.seconds, "slots": w.slots}
    elif isinstance(w, CalendarWindow):
        window = {"unit": w.unit, "time_zone": w.time_zone}
    else:
        window = None
    body = {"key": limit.key, "scope": limit.scope, "name": limit.name, "metric": limit.metric}
    return json.dumps({**body, "limit": limit.limit, "window": window}, separators=(",", ":"))


def undescribe(spec: str) -> Limit:
    data = json.loads(spec)
    w = data["window"]
    window: SlidingWindow | CalendarWindow | None = None
    if w is not None and "seconds" in w:
        window = SlidingWindow(w["seconds"], w["slots"])
    elif w is not None:
        window = CalendarWindow(w["unit"], w["time_zone"])
    return Limit(data["key"], data["scope"], data["name"], data["metric"], data["limit"], window)


class LimitArgs:
    """Per limit: its Redis key, its packed line and its description, built once (a calendar window's
    line is packed per call, with the period bounds around the caller's time)."""

    def __init__(self, prefix: str, periods: PeriodCache) -> None:
        self._prefix = prefix
        self._periods = periods
        self._known: dict[Limit, tuple[str, bytes, str]] = {}

    def _parts(self, limit: Limit) -> tuple[str, bytes, str]:
        known = self._known.get(limit)
        if known is None:
            if len(self._known) > 10_000:
                self._known.clear()  # limits whose value changed by schedule; rebuilding is cheap
            w = limit.window
            metric = METRIC_CODES.get(limit.metric, 0)
            if isinstance(w, SlidingWindow):
                packed = LIMIT.pack(metric, SLIDING, limit.limit, w.slot_seconds, w.slots, 0, 0)
                known = (f"{self._prefix}w:{limit.key}", packed, describe(limit))
            elif isinstance(w, CalendarWindow):
                known = (f"{self._prefix}w:{limit.key}", b"", describe(limit))
            else:
                packed = LIMIT.pack(metric, CONCURRENT, limit.limit, 0, 0, 0, 0)
                known = (f"{self._prefix}c:{limit.key}", packed, describe(limit))
            self._known[limit] = known
        return known

    def key(self, limit: Limit) -> str:
        return self._parts(limit)[0]

    def packed(self, limit: Limit, now: float) -> bytes:
        if isinstance(limit.window, CalendarWindow):
            bounds = self._periods.bounds(limit.window, now)
            return LIMIT.pack(METRIC_CODES[limit.metric], CALENDAR, limit.limit, *bounds)
        return self._parts(limit)[1]

    def lines(self, limits: Sequence[Limit], now: float) -> bytes:
        return b"".join(self.packed(limit, now) for limit in limits)

    def descriptions(self, limits: Sequence[Limit]) -> str:
        return RS.join(self._parts(limit)[2] for limit in limits)

    def caller_key(self, redis_key: bytes) -> str:
        """The caller's limit key from a counter's Redis key (<prefix>w:<key> or <prefix>c:<key>)."""
        return redis_key.decode()[len(self._prefix) + 2 :]


def admitted(reservation_id: str, outlook: bytes, keys: Sequence[str]) -> Admitted:
    values = struct.unpack(f"<{2 * len(keys)}d", outlook)
    remaining = {key: values[2 * i] for i, key in enumerate(keys)}
    reset = {key: values[2 * i + 1] for i, key in enumerate(keys)}
    return Admitted(reservation_id, remaining, reset)


def denied(limit: Limit, packed: bytes) -> Denied:
    used, reserved, requested, retry = REFUSAL.unpack(packed)
    return Denied(limit, used, reserved, requested, None if retry < 0 else retry)


def usage_rows(packed: bytes, count: int) -> list[tuple[float, float, float | None]]:
    values = struct.unpack(f"<{3 * count}d", packed)
    rows: list[tuple[float, float, float | None]] = []
    for i in range(count):
        used, reserved, reset = values[3 * i : 3 * i + 3]
        rows.append((used, reserved, None if reset < 0 else reset))
    return rows
