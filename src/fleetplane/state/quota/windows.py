"""Window arithmetic shared by both stores: which bucket an instant falls in, which buckets count, when a
bucket leaves, and the retry/reset times that follow. `scripts/windows.lua` does the same arithmetic, formula
for formula, so the memory and Redis stores agree to the bit (both use IEEE doubles).

A bucket is a sliding window's slot (index = floor(t / slot_seconds)) or a calendar period (index = the
period's start in epoch seconds). A sliding window counts its current slot and the `slots - 1` before it,
so it covers between `seconds - slot_seconds` and `seconds` of history; usage leaves whole slots at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleetplane.state.quota.model import CalendarWindow, SlidingWindow
from fleetplane.state.quota.periods import Bounds, PeriodCache

# Where a reservation's usage goes when no bucket can hold it (a calendar reservation living beyond the
# four periods it knows): recorded in the reservation so its sums stay whole, never written to a counter.
UNPLACED = -1
# Slack for comparisons: float dollars accumulate binary rounding (a nano-dollar is far below any price);
# integer counters are unaffected.
EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Geometry:
    """One windowed limit's mapping from instants to buckets."""

    slot: float = 0.0  # sliding: seconds per slot
    slots: int = 0  # sliding: slots in the window
    bounds: Bounds | None = None  # calendar: see periods.compute_bounds

    def current(self, now: float) -> int | None:
        if self.bounds is None:
            return math.floor(now / self.slot)
        b = self.bounds
        for i in range(3):
            if b[i] <= now < b[i + 1]:
                return b[i]
        return None

    def counts(self, idx: int, cur: int | None) -> bool:
        if cur is None or idx == UNPLACED:
            return False
        if self.bounds is None:
            # Slots ahead of `cur` (a clock that stepped back) still count: over-counting is the safe side.
            return idx > cur - self.slots
        return idx == cur

    def stale(self, idx: int, cur: int | None) -> bool:
        """Out of the window for good, so its counter may be deleted."""
        if cur is None:
            return False
        if self.bounds is None:
            return idx <= cur - self.slots
        return idx < cur

    def leaves_at(self, idx: int) -> float | None:
        if self.bounds is None:
            return (idx + self.slots) * self.slot
        b = self.bounds
        for i in range(3):
            if b[i] == idx:
                return float(b[i + 1])
        return None


class Geometries:
    """One Geometry per window, reused while its period lasts (admission builds none on the hot path)."""

    def __init__(self) -> None:
        self._periods = PeriodCache()
        self._known: dict[SlidingWindow | CalendarWindow, Geometry] = {}

    def of(self, window: SlidingWindow | CalendarWindow, now: float) -> Geometry:
        geo = self._known.get(window)
        if isinstance(window, SlidingWindow):
            if geo is None:
                geo = self._known[window] = Geometry(slot=window.slot_seconds, slots=window.slots)
            return geo
        bounds = self._periods.bounds(window, now)
        if geo is None or geo.bounds != bounds:
            geo = self._known[window] = Geometry(bounds=bounds)
        return geo


def window_retry_after(
    geo: Geometry, held: list[tuple[int, float]], total: float, requested: float, limit: float, now: float
) -> float | None:
    """Seconds until enough of the window's usage leaves for `requested` to fit; None if it never can."""
    if requested > limit + EPS:
        return None
    excess = total + requested - limit
    if excess <= EPS:
        return 0.0
    freed = 0.0
    for idx, amount in sorted(held):
        freed += amount
        if freed >= excess - EPS:
            at = geo.leaves_at(idx)
            return None if at is None else max(0.0, at - now)
    return None


def window_reset_after(
    geo: Geometry, held: list[tuple[int, float]], cur: int | None, now: float
) -> float | None:
    """Seconds until the oldest bucket holding usage leaves (sliding) or the period ends (calendar)."""
    if geo.bounds is not None:
        at = None if cur is None else geo.leaves_at(cur)
        return None if at is None else at - now
    occupied = [idx for idx, amount in held if amount > EPS]
    if not occupied:
        return None
    return max(0.0, (min(occupied) + geo.slots) * geo.slot - now)


def holders_retry_after(deadlines: list[float], limit: float, now: float) -> float | None:
    """A concurrency limit frees a place when a holder settles, at the latest when its lease runs out."""
    if limit + EPS < 1:
        return None
    excess = len(deadlines) + 1 - limit
    if excess <= EPS:
        return 0.0
    ordered = sorted(deadlines)
    return max(0.0, ordered[min(len(ordered), math.ceil(excess - EPS)) - 1] - now)


def holders_reset_after(deadlines: list[float], now: float) -> float | None:
    return max(0.0, min(deadlines) - now) if deadlines else None
