"""Both quota stores through one suite: the in-process store and the Redis one, each on a ManualClock
(the Redis store passes the clock's time to its scripts), so windows and leases move without sleeping."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from quota_support import T0, Quota

from fleetplane.state.clock import ManualClock
from fleetplane.state.quota import MemoryQuotaStore, QuotaStore
from fleetplane.state.quota.redis_store import RedisQuotaStore


@pytest.fixture(params=["memory", "redis"])
async def quota(request: pytest.FixtureRequest) -> AsyncIterator[Quota]:
    clock = ManualClock(start=T0)
    store: QuotaStore
    if request.param == "memory":
        store = MemoryQuotaStore(clock=clock)
    else:
        store = RedisQuotaStore(request.getfixturevalue("redis_url"), clock=clock)
    try:
        yield Quota(store, clock, request.param)
    finally:
        await store.close()
