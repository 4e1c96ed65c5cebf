"""What only the in-process store has to prove: it forgets what no longer counts, so a long-running
gateway's memory stays bounded by what is in the windows now."""

from __future__ import annotations

import pytest
from quota_support import T0, concurrent, tpm, usd_per_day

from fleetplane.state.clock import ManualClock
from fleetplane.state.quota import Charge, MemoryQuotaStore

pytestmark = pytest.mark.anyio


async def test_idle_counters_ended_reservations_and_tombstones_are_forgotten() -> None:
    clock = ManualClock(start=T0)
    store = MemoryQuotaStore(clock=clock, settled_ttl=300)
    for user in range(1000):
        limits = [tpm(f"user/{user}/tpm"), usd_per_day(f"user/{user}/usd"), concurrent(f"user/{user}/c")]
        await store.admit(f"r{user}", limits, Charge(tokens=10, dollars=0.01), lease=30)
        if user % 2:
            await store.settle(f"r{user}", Charge(tokens=5, dollars=0.005))
    clock.advance(2 * 86400)  # past every lease, window, day and tombstone
    assert await store.expire() == 500
    await store.expire()  # the tombstones of the expired ones go a tombstone-lifetime later
    clock.advance(301)
    await store.expire()
    assert (store._windows, store._holders, store._open, store._settled) == ({}, {}, {}, {})
    assert len(store._leases) == 0 and len(store._idle) == 0
