"""What only the in-process store has to prove: it forgets what no longer counts, so a long-running
gateway's memory stays bounded by what is in the windows now."""

from __future__ import annotations

import pytest
from quota_support import T0, concurrent, tpm, usd_per_day

from fleetplane.state.clock import ManualClock
from fleetplane.state.quota import Admitted, Charge, MemoryQuotaStore
from fleetplane.state.quota.memory import MAX_SETTLED

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


async def test_many_unique_requests_on_shared_limits_keep_a_bounded_state() -> None:
    """The layered benchmark's shape: every request on the same ten limits, each reservation settled at
    once. Ended reservations are remembered for replays at most `max_settled` at a time."""
    clock = ManualClock(start=T0)
    store = MemoryQuotaStore(clock=clock, max_settled=100)
    limits = [tpm(f"scope/{i}/tpm", limit=1e9) for i in range(8)]
    limits += [usd_per_day("key/usd", limit=1e9), concurrent("agent/c", limit=10)]
    for n in range(1000):
        decision = await store.admit(f"r{n}", limits, Charge(tokens=10, dollars=0.01), lease=30)
        assert isinstance(decision, Admitted)
        assert await store.settle(f"r{n}", Charge(tokens=5, dollars=0.005))
        clock.advance(0.01)
    sizes = store.sizes()
    assert sizes["settled"] == 100 and sizes["open"] == 0 and sizes["holders"] == 0
    assert sizes["leases"] <= 64  # settled reservations' lease entries do not wait out their lease
    assert sizes["windows"] == 9  # one counter per windowed limit, not per request
    # The newest ended reservation is still replayed (not charged again); the oldest is forgotten.
    before = await store.usage(limits[:1])
    assert await store.admit("r999", limits, Charge(tokens=10), lease=30) == decision
    assert await store.usage(limits[:1]) == before
    assert "r0" not in store._settled
    clock.advance(2 * 86400)
    await store.expire()
    assert store.sizes() == {"windows": 0, "idle": 0, "holders": 0, "open": 0, "leases": 0, "settled": 0}


async def test_the_default_cap_on_ended_reservations() -> None:
    clock = ManualClock(start=T0)
    store = MemoryQuotaStore(clock=clock)
    for n in range(MAX_SETTLED + 50):
        await store.admit(f"r{n}", [tpm("k/tpm", limit=1e9)], Charge(tokens=1), lease=30)
        await store.release(f"r{n}")
    assert store.sizes()["settled"] == MAX_SETTLED
