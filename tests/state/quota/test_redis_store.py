"""What only the Redis store has: several processes on one set of counters, server time, scripts that a
server can lose, and failures that must all surface as QuotaStoreUnavailable."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
from quota_support import T0, at, concurrent, hammered_limits, tpm, usd_per_day

from fleetplane.state.clock import ManualClock
from fleetplane.state.quota import Admitted, Charge, Denied, QuotaStoreUnavailable
from fleetplane.state.quota.redis_store import RedisQuotaStore

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

HAMMER = Path(__file__).parent / "hammer.py"


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisQuotaStore]:
    s = RedisQuotaStore(redis_url, clock=ManualClock(start=T0))
    try:
        yield s
    finally:
        await s.close()


def test_three_processes_hammering_the_same_limits_never_exceed_them(redis_url: str) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, str(HAMMER), redis_url, f"p{n}", "400", str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    control = redis.Redis.from_url(redis_url)
    try:
        for _ in workers:
            assert control.blpop(["hammer:ready"], timeout=60) is not None, "a worker did not start"
        control.rpush("hammer:go", *(["go"] * len(workers)))
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        control.close()
    tokens = sum(r["tokens"] for r in results)
    count = sum(r["count"] for r in results)
    print(f"\n[redis, 3 processes] {tokens}/5000 tokens admitted, fill {tokens / 5000:.1%}: {results}")
    assert tokens <= 5000
    assert all(r["count"] > 0 for r in results), "every process took part"

    async def counted() -> list[float]:
        reader = RedisQuotaStore(redis_url, clock=ManualClock(start=T0))
        try:
            return [u.reserved + u.used for u in await reader.usage(hammered_limits())]
        finally:
            await reader.close()

    # What the processes were told matches what the counters hold: nothing lost, nothing charged twice.
    assert asyncio.run(counted()) == [tokens, tokens, count, count]


async def test_replicas_share_counters_and_end_a_reservation_exactly_once(redis_url: str) -> None:
    clock = ManualClock(start=T0)
    a, b = RedisQuotaStore(redis_url, clock=clock), RedisQuotaStore(redis_url, clock=clock)
    try:
        limits = [tpm(limit=100), concurrent(limit=1)]
        assert isinstance(await a.admit("r1", limits, Charge(tokens=60), lease=30), Admitted)
        assert isinstance(await b.admit("r2", limits, Charge(tokens=10), lease=30), Denied)
        ends = await asyncio.gather(
            a.settle("r1", Charge(tokens=20)), b.settle("r1", Charge(tokens=30)), b.release("r1")
        )
        assert sorted(ends) == [False, False, True]
        [tokens, places] = await b.usage(limits)
        assert tokens.used in (20.0, 30.0, 0.0) and places.used == 0.0
        # The same id admitted by two replicas at once is charged once; either may extend or settle it.
        same = await asyncio.gather(
            *(s.admit("r3", limits, Charge(tokens=10), lease=30) for s in (a, b, a, b))
        )
        assert all(d == same[0] for d in same) and isinstance(same[0], Admitted)
        refused = await b.extend("r3", Charge(tokens=1000))
        assert isinstance(refused, Denied) and refused.limit == limits[0]
        assert [u.reserved for u in await a.usage(limits)] == [10.0, 0.0]
        assert [u.used for u in await a.usage(limits)] == [tokens.used, 1.0]
    finally:
        await a.close()
        await b.close()


async def test_server_time_is_used_when_no_clock_is_given(redis_url: str) -> None:
    store = RedisQuotaStore(redis_url)
    try:
        limit = tpm(limit=100)
        decision = await store.admit("r1", [limit], Charge(tokens=10), lease=30)
        assert isinstance(decision, Admitted)
        assert 0 < decision.reset_after[limit.key] <= 60
        assert await store.settle("r1", Charge(tokens=5))
        assert [u.used for u in await store.usage([limit])] == [5.0]
    finally:
        await store.close()


async def test_the_calendar_period_is_picked_by_server_time_not_the_replicas_clock(redis_url: str) -> None:
    """White-box: a replica whose clock runs an hour behind computes its period bounds from its own
    time, but the script charges the period that holds the server's time."""
    server = at("2024-04-01 00:00:30", "Europe/Berlin")
    skewed, correct = RedisQuotaStore(redis_url), RedisQuotaStore(redis_url)
    skewed._times = lambda: (repr(server), server - 3600)  # type: ignore[method-assign]
    correct._times = lambda: (repr(server), server)  # type: ignore[method-assign]
    try:
        budget = usd_per_day(limit=1.0)
        decision = await skewed.admit("r1", [budget], Charge(dollars=0.6), lease=30)
        assert isinstance(decision, Admitted) and decision.reset_after == {budget.key: 24 * 3600 - 30.0}
        [usage] = await correct.usage([budget])
        assert usage.reserved == pytest.approx(0.6)
    finally:
        await skewed.close()
        await correct.close()


async def test_a_server_that_lost_its_scripts_gets_them_again(store: RedisQuotaStore, redis_url: str) -> None:
    limit = tpm(limit=100)
    await store.admit("r1", [limit], Charge(tokens=10), lease=30)
    redis.Redis.from_url(redis_url).script_flush()
    assert isinstance(await store.admit("r2", [limit], Charge(tokens=10), lease=30), Admitted)
    assert await store.settle("r1", Charge(tokens=1))


async def test_a_failing_script_is_unavailable_and_charges_nothing(
    store: RedisQuotaStore, redis_url: str
) -> None:
    good, broken = tpm(limit=100), tpm("team/broken/tpm", limit=100)
    redis.Redis.from_url(redis_url).set("fleetplane:{quota}:w:team/broken/tpm", "not a hash")
    with pytest.raises(QuotaStoreUnavailable, match="WRONGTYPE"):
        await store.admit("r1", [good, broken], Charge(tokens=10), lease=30)
    # Every counter is read before any is written, so the good limit was not charged.
    assert [(u.used, u.reserved) for u in await store.usage([good])] == [(0.0, 0.0)]


async def test_an_unreachable_server_is_unavailable_for_every_operation() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    store = RedisQuotaStore(f"redis://127.0.0.1:{port}/0", clock=ManualClock(), timeout=0.5)
    try:
        limit = tpm()
        calls = [
            store.admit("r1", [limit], Charge(tokens=1), lease=30),
            store.extend("r1", Charge(tokens=1)),
            store.commit("r1", Charge(tokens=1)),
            store.settle("r1", Charge(tokens=1)),
            store.release("r1"),
            store.expire(),
            store.usage([limit]),
        ]
        for call in calls:
            with pytest.raises(QuotaStoreUnavailable):
                await call
    finally:
        await store.close()


async def test_keys_share_one_hash_tag_and_nothing_outlives_its_use(
    store: RedisQuotaStore, redis_url: str
) -> None:
    limits = [tpm(limit=100), concurrent(limit=3)]
    await store.admit("r1", limits, Charge(tokens=10), lease=30)
    await store.admit("r2", limits, Charge(tokens=10), lease=30)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys: set[str] = set(client.keys("*"))  # type: ignore[arg-type]
    assert all(key.startswith("fleetplane:{quota}:") for key in keys)
    counter = "fleetplane:{quota}:w:team/acme/tpm"
    assert client.pttl(counter) > 0
    assert client.pttl("fleetplane:{quota}:r:r1") == -1  # an open reservation lives until it ends
    await store.settle("r1", Charge(tokens=5))
    await store.release("r2")
    assert 0 < client.pttl("fleetplane:{quota}:r:r1") <= 300_000  # a tombstone, for replays
    assert set(client.keys("*")) == {counter, "fleetplane:{quota}:r:r1", "fleetplane:{quota}:r:r2"}
    assert client.hgetall(counter) == {"t340000080": "5"}  # T0 // 5; no reserved field left at zero
    client.close()
