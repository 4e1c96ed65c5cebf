"""Helpers shared by the quota tests (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from fleetplane.state.clock import ManualClock
from fleetplane.state.quota import CalendarWindow, Limit, QuotaStore, SlidingWindow

# A whole minute (and so a whole 5-second slot): window arithmetic in the tests stays readable.
T0 = 1_700_000_400.0

MINUTE = SlidingWindow(seconds=60, slots=12)


@dataclass
class Quota:
    store: QuotaStore
    clock: ManualClock
    kind: str  # "memory" or "redis"


def tpm(key: str = "team/acme/tpm", limit: float = 100, window: SlidingWindow = MINUTE) -> Limit:
    return Limit(key, "team acme", "tpm", "tokens", limit, window)


def rpm(key: str = "team/acme/rpm", limit: float = 10) -> Limit:
    return Limit(key, "team acme", "rpm", "requests", limit, MINUTE)


def concurrent(key: str = "team/acme/concurrent", limit: float = 2) -> Limit:
    return Limit(key, "team acme", "concurrent", "concurrent", limit, None)


def usd_per_day(key: str = "team/acme/usd-per-day", limit: float = 1.0, tz: str = "Europe/Berlin") -> Limit:
    return Limit(key, "team acme", "usd-per-day", "dollars", limit, CalendarWindow("day", tz))


def usd_per_month(
    key: str = "team/acme/usd-per-month", limit: float = 1.0, tz: str = "Europe/Berlin"
) -> Limit:
    return Limit(key, "team acme", "usd-per-month", "dollars", limit, CalendarWindow("month", tz))


def at(local: str, tz: str) -> float:
    """Epoch seconds of a local wall time, e.g. at("2024-03-31 12:00", "Europe/Berlin")."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)).timestamp()


def hammered_limits() -> list[Limit]:
    """What the processes of the multi-process test share: tokens bind, the others are counted too."""
    return [
        tpm("org/acme/tpm", limit=20_000),
        tpm("team/acme/tpm", limit=5_000),
        rpm("team/acme/rpm", limit=1_000),
        concurrent("team/acme/concurrent", limit=1_000),
    ]
