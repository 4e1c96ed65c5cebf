"""Calendar periods (a local day or month in a time zone) as epoch boundaries, DST-correct.

The boundaries are computed here, with zoneinfo, and handed to whoever picks the current period: the
memory store with its own clock, the Redis scripts with the server's clock. Redis' Lua has no time-zone
database, so it cannot find a local midnight itself; Python passes four boundaries (the previous, current
and next period, and the end of the next), and the script picks the period that holds *server* time. A
replica whose clock is off by less than one period therefore still charges the period the server is in,
and every replica turns the day over at the same instant.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fleetplane.state.quota.model import CalendarWindow

Bounds = tuple[int, int, int, int]


def _local_midnight(day: date, zone: ZoneInfo) -> int:
    # fold=0 resolves a midnight that a DST jump skips to the jump itself (the first instant of that day)
    # and a midnight that occurs twice to its first occurrence.
    return int(datetime.combine(day, time(0), tzinfo=zone).timestamp())


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def compute_bounds(window: CalendarWindow, now: float) -> Bounds:
    """Starts of the previous, current and next period and the end of the next, in epoch seconds."""
    zone = ZoneInfo(window.time_zone)
    today = datetime.fromtimestamp(now, zone).date()
    if window.unit == "day":
        days = [today + timedelta(days=n) for n in (-1, 0, 1, 2)]
    else:
        first = today.replace(day=1)
        days = [_add_months(first, n) for n in (-1, 0, 1, 2)]
    b0, b1, b2, b3 = (_local_midnight(d, zone) for d in days)
    return b0, b1, b2, b3


class PeriodCache:
    """Boundaries per (unit, time zone), recomputed only when `now` leaves the cached current period."""

    def __init__(self) -> None:
        self._cache: dict[CalendarWindow, Bounds] = {}

    def bounds(self, window: CalendarWindow, now: float) -> Bounds:
        cached = self._cache.get(window)
        if cached is not None and cached[1] <= now < cached[2]:
            return cached
        fresh = compute_bounds(window, now)
        self._cache[window] = fresh
        return fresh
