"""State shared by replicas: two clients on one Redis, many asyncio tasks, two OS processes; each
observation counts exactly once. Plus reset and snapshot on both stores."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from breaker_support import START, MakeStore, spec_with, value

from fleetplane.state.breaker import BreakerSnapshot, BreakerStore, RedisBreakerStore, Trigger
from fleetplane.state.clock import ManualClock

pytestmark = pytest.mark.anyio

SPEND = Trigger("spend", window=60, threshold=1_000_000, kind="sum")
REPLICA = Path(__file__).parent / "breaker_replica.py"


async def test_two_replicas_share_windows_and_state(redis_url: str, clock: ManualClock) -> None:
    a, b = RedisBreakerStore(redis_url, clock=clock), RedisBreakerStore(redis_url, clock=clock)
    spec = spec_with(Trigger("cost-velocity", window=60, threshold=5.0, kind="sum"))
    try:
        await a.observe(spec, "cost-velocity", 3.0)
        assert await value(b, spec, "cost-velocity") == 3.0
        tripped = await b.observe(spec, "cost-velocity", 3.0)  # the windows add up across replicas
        assert tripped.status == "open"
        seen_by_a = await a.check(spec)
        assert (seen_by_a.status, seen_by_a.reason) == ("open", "cost velocity $6.00/min > $5.00/min")
        clock.advance(30)
        assert (await a.check(spec)).probe
        assert (await b.check(spec)).admitted is False  # the one probe slot is taken, for everyone
        assert (await b.probe_done(spec, good=True)).status == "closed"
        assert (await a.check(spec)).status == "closed"
    finally:
        await a.close()
        await b.close()


async def test_concurrent_tasks_count_each_observation_once(make_store: MakeStore) -> None:
    stores = [make_store() for _ in range(4)]  # on Redis: four clients, each with its own pool
    spec = spec_with(SPEND)

    async def observe_many(store: BreakerStore) -> None:
        for _ in range(25):
            await store.observe(spec, "spend", 1.0)

    await asyncio.gather(*(observe_many(stores[i % 4]) for i in range(20)))
    assert await value(stores[0], spec, "spend") == 500


async def test_concurrent_tasks_trip_exactly_once_at_the_threshold(make_store: MakeStore) -> None:
    stores = [make_store() for _ in range(4)]
    spec = spec_with(Trigger("spend", window=60, threshold=99, kind="sum"))
    verdicts = await asyncio.gather(*(stores[i % 4].observe(spec, "spend", 1.0) for i in range(200)))
    statuses = [v.status for v in verdicts]
    assert statuses.count("closed") == 99  # $1..$99 pass; the 100th trips; the rest meet an open breaker
    assert statuses.count("open") == 101
    (snap,) = await stores[0].snapshot([spec.key])
    assert snap.trips == 1


async def run_replicas(redis_url: str, key: str, count: int, threshold: float) -> list[int]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(REPLICA),
            redis_url,
            key,
            str(count),
            repr(START),
            repr(threshold),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert (await proc.stdout.readline()).strip() == b"ready"
    outs = await asyncio.gather(*(proc.communicate(b"go\n") for proc in procs))
    assert [proc.returncode for proc in procs] == [0, 0]
    return [int(out.strip()) for out, _ in outs]


async def test_two_processes_and_this_one_count_each_observation_once(
    redis_url: str, clock: ManualClock
) -> None:
    store = RedisBreakerStore(redis_url, clock=clock)
    spec = spec_with(SPEND, key="loop-guard/agent:shared")

    async def here() -> None:
        for _ in range(200):
            await store.observe(spec, "spend", 1.0)

    try:
        replicas, _ = await asyncio.gather(run_replicas(redis_url, spec.key, 300, SPEND.threshold), here())
        assert replicas == [300, 300]
        assert await value(store, spec, "spend") == 800
    finally:
        await store.close()


async def test_two_processes_trip_exactly_once_between_them(redis_url: str, clock: ManualClock) -> None:
    store = RedisBreakerStore(redis_url, clock=clock)
    try:
        closed = await run_replicas(redis_url, "loop-guard/agent:racing", 300, 449)
        assert sum(closed) == 449
        (snap,) = await store.snapshot(["loop-guard/agent:racing"])
        assert (snap.status, snap.trips, snap.reason) == ("open", 1, "spend 450 in 1min > 449")
    finally:
        await store.close()


async def test_reset_closes_and_forgets(store: BreakerStore) -> None:
    spec = spec_with(Trigger("repeats", window=60, threshold=1, kind="sum"))
    await store.observe(spec, "repeats", 2)
    assert (await store.check(spec)).status == "open"
    assert await store.reset(spec.key) is True
    assert (await store.check(spec)).status == "closed"
    assert await store.snapshot() == []
    # Asked by key, an unknown breaker is a closed one that never tripped.
    assert await store.snapshot([spec.key]) == [
        BreakerSnapshot(spec.key, "closed", None, None, None, None, 0, {})
    ]
    assert await store.reset(spec.key) is False
    assert (await store.observe(spec, "repeats", 1)).status == "closed"  # the window started over


async def test_snapshot_lists_every_breaker_with_its_values(store: BreakerStore, clock: ManualClock) -> None:
    guard = spec_with(
        Trigger("cost-velocity", window=60, threshold=5.0, kind="sum"),
        Trigger("context-growth", window=300, threshold=100_000, kind="max"),
        key="loop-guard/agent:acme/support/bot",
    )
    upstream = spec_with(
        Trigger("error-rate", window=60, threshold=0.5, kind="ratio", min_samples=2),
        key="upstream-errors/deployment:sim/sim-large",
    )
    await store.observe(guard, "cost-velocity", 1.25)
    await store.observe(guard, "context-growth", 42_000)
    await store.observe(upstream, "error-rate", 0, bad=True)
    await store.observe(upstream, "error-rate", 0, bad=True)
    clock.advance(12)
    snaps = await store.snapshot()
    assert [s.key for s in snaps] == [guard.key, upstream.key]
    calm, opened = snaps
    assert (calm.status, calm.reason, calm.opened_at, calm.retry_after, calm.trips) == (
        "closed", None, None, None, 0,
    )  # fmt: skip
    assert calm.values == {"cost-velocity": 1.25, "context-growth": 42_000}
    assert (opened.status, opened.trigger, opened.opened_at, opened.retry_after, opened.trips) == (
        "open", "error-rate", START, 18, 1,
    )  # fmt: skip
    assert opened.reason == "error rate 100% > 50% (2 of 2 in 1min)"
    assert opened.values == {"error-rate": 0.0}
    clock.advance(18)
    (half,) = await store.snapshot([upstream.key])
    assert (half.status, half.opened_at, half.retry_after) == ("half_open", START, None)


async def test_without_a_clock_redis_server_time_is_the_clock(redis_url: str) -> None:
    import redis.asyncio as redis

    server = redis.Redis.from_url(redis_url)
    store = RedisBreakerStore(redis_url)  # no clock: every replica reads the one server's TIME
    spec = spec_with(Trigger("repeats", window=60, threshold=1, kind="sum"), open_for=30)
    try:
        sec, usec = await server.time()
        before = sec + usec / 1e6
        tripped = await store.observe(spec, "repeats", 2)
        sec, usec = await server.time()
        after = sec + usec / 1e6
        (snap,) = await store.snapshot([spec.key])
        assert snap.opened_at is not None and before <= snap.opened_at <= after
        assert tripped.retry_after == 30  # opened and answered in one script, at one instant
    finally:
        await store.close()
        await server.aclose()
