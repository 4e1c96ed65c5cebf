"""L2 circuit breakers: windowed trip conditions and open / half-open / closed state per breaker key.

The gateway measures (cost per request, repeats, context size, upstream errors) and feeds this engine;
the engine keeps the windows and the state, in process or shared through Redis by every replica.
Imports nothing from fleetplane but `state.clock`. See docs/breakers-engine.md.
"""

from fleetplane.state.breaker.memory import MemoryBreakerStore
from fleetplane.state.breaker.model import (
    Arrived,
    BreakerSnapshot,
    BreakerSpec,
    Status,
    Step,
    Trigger,
    Verdict,
)
from fleetplane.state.breaker.redis_store import RedisBreakerStore
from fleetplane.state.breaker.store import BreakerStore, BreakerStoreUnavailable, open_breaker_store

__all__ = [
    "Arrived",
    "BreakerSnapshot",
    "BreakerSpec",
    "BreakerStore",
    "BreakerStoreUnavailable",
    "MemoryBreakerStore",
    "RedisBreakerStore",
    "Status",
    "Step",
    "Trigger",
    "Verdict",
    "open_breaker_store",
]
