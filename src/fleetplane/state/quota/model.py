"""The quota engine's vocabulary: limits with their windows, charges, and the decisions an admission returns.

Values only; no behaviour beyond checking that a value is well formed, so a bad limit fails where it is
built rather than deep inside a Lua script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Metric = Literal["tokens", "input_tokens", "output_tokens", "requests", "dollars", "concurrent"]

# The metrics a `Charge` carries, in the order the Redis scripts receive them.
CHARGED_METRICS: tuple[str, ...] = ("tokens", "input_tokens", "output_tokens", "requests", "dollars")


@dataclass(frozen=True)
class SlidingWindow:
    """Usage in the last `seconds`, kept in `slots` equal slots (e.g. 60 s in 12 slots of 5 s)."""

    seconds: float
    slots: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"a sliding window needs seconds > 0, not {self.seconds!r}")
        if isinstance(self.slots, bool) or not isinstance(self.slots, int) or self.slots < 1:
            raise ValueError(f"a sliding window needs a whole number of slots >= 1, not {self.slots!r}")

    @property
    def slot_seconds(self) -> float:
        return self.seconds / self.slots


@dataclass(frozen=True)
class CalendarWindow:
    """A calendar day or month in a time zone; turns over at local midnight."""

    unit: Literal["day", "month"]
    time_zone: str

    def __post_init__(self) -> None:
        if self.unit not in ("day", "month"):
            raise ValueError(f"a calendar window is a 'day' or a 'month', not {self.unit!r}")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.time_zone!r}") from exc


Window = SlidingWindow | CalendarWindow


@dataclass(frozen=True)
class Limit:
    key: str  # stable counter id, e.g. "team/acme/support/tpm" (includes scope and name)
    scope: str  # human label for messages and headers, e.g. "team acme/support"
    name: str  # e.g. "tpm", "input-tpm", "rpm", "concurrent", "usd-per-day"
    metric: Metric
    limit: float  # the value in force now (the caller evaluates schedules)
    window: SlidingWindow | CalendarWindow | None  # None only for "concurrent"

    def __post_init__(self) -> None:
        if not self.key or any(ord(c) < 32 for c in self.key):
            # Control characters separate fields on the way to the Redis scripts.
            raise ValueError(f"a limit needs a key without control characters, not {self.key!r}")
        if self.metric not in (*CHARGED_METRICS, "concurrent"):
            raise ValueError(f"unknown metric {self.metric!r}")
        if (self.window is None) != (self.metric == "concurrent"):
            raise ValueError(f"limit {self.key!r}: a window is required for every metric but 'concurrent'")
        if not (math.isfinite(self.limit) and self.limit >= 0):
            raise ValueError(f"limit {self.key!r}: the limit must be a finite number >= 0")


@dataclass(frozen=True)
class Charge:
    """Amounts per metric; the engine applies to each limit the amount of its metric.

    "concurrent" limits count one per open reservation, whatever the charge.
    """

    tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    dollars: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "dollars":
                ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            else:
                # Tokens and requests are integers end to end (HINCRBY in Redis): a float here is a bug.
                ok = isinstance(value, int) and not isinstance(value, bool)
            if not ok or value < 0:
                raise ValueError(f"charge {f.name} must be a non-negative {f.type}, not {value!r}")

    def amount(self, metric: str) -> float:
        return float(getattr(self, metric))


@dataclass(frozen=True)
class Admitted:
    reservation_id: str
    remaining: dict[str, float]  # per limit key: what is left after this charge (never below 0)
    reset_after: dict[str, float]  # per limit key: seconds until some of what it holds is sure to leave


@dataclass(frozen=True)
class Denied:
    limit: Limit  # the binding limit: of those that refused, the one that frees up last
    used: float
    reserved: float
    requested: float
    # Seconds until enough of the window frees up for this request; None if it can never fit
    # (requested > limit).
    retry_after: float | None


Decision = Admitted | Denied


@dataclass(frozen=True)
class LimitUsage:
    key: str
    limit: float
    used: float  # in the window now, minus what open reservations hold beyond their committed usage
    reserved: float  # what open reservations hold beyond their committed usage
    reset_after: float | None  # None when nothing is held (a calendar window always has a period end)
