"""The wire format between Python and the quota scripts: limits and charges as script arguments, script
replies as decisions. Numbers travel as decimal strings that round-trip exactly (`repr` of a float)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fleetplane.state.quota.model import (
    CHARGED_METRICS,
    Admitted,
    CalendarWindow,
    Charge,
    Decision,
    Denied,
    Limit,
    SlidingWindow,
)
from fleetplane.state.quota.periods import PeriodCache


def number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def charge_args(charge: Charge) -> list[str]:
    return [number(getattr(charge, m)) for m in CHARGED_METRICS]


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
    if w is not None:
        window = (
            SlidingWindow(w["seconds"], w["slots"])
            if "seconds" in w
            else CalendarWindow(w["unit"], w["time_zone"])
        )
    return Limit(data["key"], data["scope"], data["name"], data["metric"], data["limit"], window)


class LimitArgs:
    """Per limit: its Redis key and the script arguments that do not change with time, built once."""

    def __init__(self, prefix: str, periods: PeriodCache) -> None:
        self._prefix = prefix
        self._periods = periods
        self._static: dict[Limit, tuple[str, list[str], str]] = {}

    def _fixed(self, limit: Limit) -> tuple[str, list[str], str]:
        known = self._static.get(limit)
        if known is None:
            if len(self._static) > 10_000:
                self._static.clear()  # limits whose value changed by schedule; rebuilding is cheap
            w = limit.window
            if isinstance(w, SlidingWindow):
                key, geo, kind = (
                    f"{self._prefix}w:{limit.key}",
                    [repr(w.slot_seconds), str(w.slots), "", ""],
                    "s",
                )
            elif isinstance(w, CalendarWindow):
                key, geo, kind = f"{self._prefix}w:{limit.key}", [], "c"
            else:
                key, geo, kind = f"{self._prefix}c:{limit.key}", ["", "", "", ""], "n"
            known = (key, [kind, *geo], describe(limit))
            self._static[limit] = known
        return known

    def key(self, limit: Limit) -> str:
        return self._fixed(limit)[0]

    def geometry(self, limit: Limit, now: float) -> list[str]:
        """kind and four geometry fields; a calendar window's are the period bounds around `now`."""
        _, geo, _ = self._fixed(limit)
        if isinstance(limit.window, CalendarWindow):
            return ["c", *(str(b) for b in self._periods.bounds(limit.window, now))]
        return geo

    def admission(self, limit: Limit, now: float) -> list[str]:
        _, _, spec = self._fixed(limit)
        return [limit.key, limit.metric, number(limit.limit), *self.geometry(limit, now), spec]


def admitted(reservation_id: str, reply: Sequence[Any]) -> Admitted:
    remaining: dict[str, float] = {}
    reset: dict[str, float] = {}
    for i in range(1, len(reply) - 2, 3):
        key = str(reply[i])
        remaining[key] = float(reply[i + 1])
        reset[key] = float(reply[i + 2])
    return Admitted(reservation_id, remaining, reset)


def denied(limit: Limit, reply: Sequence[Any]) -> Denied:
    retry = None if reply[5] == "" else float(reply[5])
    return Denied(limit, float(reply[2]), float(reply[3]), float(reply[4]), retry)


def decision(reservation_id: str, reply: Sequence[Any], limits: Sequence[Limit] | None) -> Decision:
    """An admit reply names the refusing limit by position in `limits`; an extend reply by description."""
    if int(reply[0]) == 1:
        return admitted(reservation_id, reply)
    limit = limits[int(reply[1]) - 1] if limits is not None else undescribe(str(reply[1]))
    return denied(limit, reply)
