"""The KV: the in-process LRU is bounded by entries and bytes, the gateway keeps cache and cooldowns apart
so cache churn cannot evict a cooldown, and the Redis KV answers a brownout with a fast `KVUnavailable`
(a short timeout, then a rest during which Redis is not asked) and comes back by itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fleetplane.gateway.app import GatewayRuntime, GatewaySettings
from fleetplane.state.clock import ManualClock
from fleetplane.state.kv import ENTRY_OVERHEAD, KVUnavailable, MemoryKV, RedisKV
from fleetplane.store.db import Store

pytestmark = pytest.mark.anyio


# -- MemoryKV ----------------------------------------------------------------------------------------------


async def test_memory_kv_is_bounded_by_bytes() -> None:
    kv = MemoryKV(clock=ManualClock(), max_entries=1_000_000, max_bytes=10_000)
    value = b"x" * 1_000
    for i in range(100):
        await kv.set(f"k{i:03d}", value, 60)
        assert kv.size_bytes <= 10_000
    per_entry = 4 + 1_000 + ENTRY_OVERHEAD
    assert len(kv) == 10_000 // per_entry
    assert await kv.get("k099") == value  # the newest stay
    assert await kv.get("k000") is None  # the least recently used went first


async def test_memory_kv_is_bounded_by_entries() -> None:
    kv = MemoryKV(clock=ManualClock(), max_entries=10)
    for i in range(25):
        await kv.set(f"k{i}", b"v", 60)
    assert len(kv) == 10
    assert await kv.get("k24") == b"v"
    assert await kv.get("k14") is None


async def test_a_value_larger_than_the_whole_budget_is_not_kept() -> None:
    kv = MemoryKV(clock=ManualClock(), max_bytes=2_000)
    await kv.set("small", b"s", 60)
    await kv.set("huge", b"h" * 5_000, 60)
    assert await kv.get("huge") is None
    assert await kv.get("small") == b"s"  # and it evicted nothing on its way


async def test_bytes_are_given_back_on_overwrite_delete_and_expiry() -> None:
    clock = ManualClock()
    kv = MemoryKV(clock=clock, max_bytes=1_000_000)
    await kv.set("a", b"1" * 100, 10)
    await kv.set("a", b"1" * 10, 10)
    assert kv.size_bytes == 1 + 10 + ENTRY_OVERHEAD
    await kv.set("b", b"2" * 50, 5)
    await kv.delete("a")
    assert kv.size_bytes == 1 + 50 + ENTRY_OVERHEAD
    clock.advance(6)
    assert await kv.get("b") is None
    assert kv.size_bytes == 0
    assert await kv.incr("n", 10) == 1
    assert await kv.incr("n", 10) == 2
    assert kv.size_bytes == 1 + 1 + ENTRY_OVERHEAD


async def test_remaining_keeps_a_consulted_mark_away_from_eviction() -> None:
    clock = ManualClock()
    kv = MemoryKV(clock=clock, max_entries=3)
    await kv.set("cooldown", b"1", 60)
    await kv.set("a", b"1", 60)
    await kv.set("b", b"1", 60)
    assert await kv.remaining(["cooldown"]) == [60]
    await kv.set("c", b"1", 60)
    assert await kv.remaining(["cooldown", "a"]) == [60, None]


# -- the gateway's two KVs -----------------------------------------------------------------------------------


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[GatewayRuntime]:
    store = await Store.open(f"sqlite:///{tmp_path / 'gw.db'}")
    settings = GatewaySettings(cache_max_entries=500, cache_max_bytes=200_000)
    runtime = GatewayRuntime(store, settings, clock=ManualClock())
    try:
        yield runtime
    finally:
        await runtime.cache_kv.close()
        await runtime.kv.close()
        await store.close()


async def test_cache_churn_cannot_evict_a_cooldown(runtime: GatewayRuntime) -> None:
    await runtime.cooldowns.mark("sim/sim-large", 60)
    # Far more cache stores than the cache may hold, by count and by bytes.
    for i in range(2_000):
        await runtime.cache_kv.set(f"cache:{i}", b"answer" * 100, 3600)
    for i in range(200):
        await runtime.cache_kv.set(f"cache:big:{i}", b"a" * 50_000, 3600)
    assert await runtime.cooldowns.remaining(["sim/sim-large"]) == [60]
    assert runtime.cache_kv is not runtime.kv


async def test_one_lru_for_both_would_have_lost_it() -> None:
    # What the separation prevents: the same churn through one shared LRU evicts the cooldown.
    shared = MemoryKV(clock=ManualClock(), max_entries=500)
    await shared.set("cooldown:sim/sim-large", b"1", 60)
    for i in range(1_000):
        await shared.set(f"cache:{i}", b"answer", 3600)
    assert await shared.remaining(["cooldown:sim/sim-large"]) == [None]


# -- RedisKV -------------------------------------------------------------------------------------------------


class Relay:
    """A TCP relay to Redis that can go silent: connections are accepted (and counted) and bytes dropped."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.silent = False
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        if self.silent:
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.append(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if self.silent:
                        continue  # a brownout: nothing gets through, nothing is refused
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[tuple[Relay, str]]:
    from redis.asyncio.connection import parse_url

    target = parse_url(redis_url)
    relay = Relay(str(target.get("host", "127.0.0.1")), int(target.get("port", 6379)))
    port = await relay.start()
    try:
        yield relay, f"redis://127.0.0.1:{port}/{target.get('db', 0)}"
    finally:
        await relay.close()


async def test_redis_kv_round_trip(redis_url: str) -> None:
    kv = RedisKV(redis_url, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        await kv.set("a", b"value", 30)
        assert await kv.get("a") == b"value"
        assert await kv.incr("n", 30) == 1
        assert await kv.incr("n", 30) == 2
        left = await kv.remaining(["a", "missing"])
        assert left[0] is not None and 0 < left[0] <= 30
        assert left[1] is None
        await kv.delete("a")
        assert await kv.get("a") is None
    finally:
        await kv.close()


async def test_a_brownout_is_one_timeout_then_fast_refusals_until_redis_answers_again(
    relay: tuple[Relay, str],
) -> None:
    proxy, url = relay
    clock = ManualClock()
    kv = RedisKV(url, prefix=f"test:{uuid.uuid4().hex}:", timeout=0.2, rest=3.0, clock=clock)
    try:
        await kv.set("cooldown", b"1", 60)
        proxy.silent = True
        with pytest.raises(KVUnavailable, match="unreachable"):
            await kv.get("cooldown")  # the one call that waits out the timeout
        assert not kv.available
        accepted = proxy.accepted
        for _ in range(20):  # resting: Redis is not asked at all
            with pytest.raises(KVUnavailable, match="resting"):
                await kv.remaining(["cooldown"])
        assert proxy.accepted == accepted

        clock.advance(3.0)  # rest over, Redis still silent: one probe fails, another rest begins
        outcomes = await asyncio.gather(kv.get("cooldown"), kv.get("cooldown"), return_exceptions=True)
        assert all(isinstance(o, KVUnavailable) for o in outcomes)
        assert sum("resting" in str(o) for o in outcomes) == 1  # only one of them asked Redis
        assert proxy.accepted == accepted + 1
        assert not kv.available

        proxy.silent = False
        with pytest.raises(KVUnavailable, match="resting"):
            await kv.get("cooldown")
        clock.advance(3.0)
        assert await kv.get("cooldown") == b"1"  # the probe succeeds and ends the rest
        assert kv.available
        assert await kv.remaining(["cooldown"]) != [None]
    finally:
        await kv.close()


async def test_an_unreachable_redis_is_kv_unavailable() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    kv = RedisKV(f"redis://127.0.0.1:{port}/0", clock=ManualClock())
    try:
        for call in (kv.get("a"), kv.set("a", b"1", 1), kv.incr("a", 1), kv.remaining(["a"]), kv.delete("a")):
            with pytest.raises(KVUnavailable):
                await call
    finally:
        await kv.close()
