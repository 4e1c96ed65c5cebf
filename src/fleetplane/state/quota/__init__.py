"""L1 quotas: token, request, concurrency and dollar limits kept exact under concurrency, across gateway
replicas, for streams and for cancellations.

Owns the quota model (limits, windows, charges, decisions), the `QuotaStore` protocol, the in-process
store (`MemoryQuotaStore`, the embedded default) and the shared one (`RedisQuotaStore`, Lua scripts in
`scripts/`). The gateway's L1 policy decides which limits apply and what to charge; this package only
counts, atomically. Ground floor: imports nothing from fleetplane but `state.clock`.
See docs/quotas-engine.md for the algorithms, the Redis layout and the guarantees.
"""

from __future__ import annotations

from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.state.quota.memory import MemoryQuotaStore
from fleetplane.state.quota.model import (
    Admitted,
    CalendarWindow,
    Charge,
    Decision,
    Denied,
    Limit,
    LimitUsage,
    Metric,
    SlidingWindow,
)
from fleetplane.state.quota.store import QuotaStore, QuotaStoreUnavailable, UnknownReservation


def open_quota_store(redis_url: str | None, *, clock: Clock | None = None) -> QuotaStore:
    """Redis when a URL is configured (server time unless `clock` is given), else in-process."""
    if redis_url:
        from fleetplane.state.quota.redis_store import RedisQuotaStore

        return RedisQuotaStore(redis_url, clock=clock)
    return MemoryQuotaStore(clock=clock or SYSTEM_CLOCK)


__all__ = [
    "Admitted",
    "CalendarWindow",
    "Charge",
    "Decision",
    "Denied",
    "Limit",
    "LimitUsage",
    "MemoryQuotaStore",
    "Metric",
    "QuotaStore",
    "QuotaStoreUnavailable",
    "SlidingWindow",
    "UnknownReservation",
    "open_quota_store",
]
