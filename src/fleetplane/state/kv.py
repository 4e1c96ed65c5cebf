"""A key-value store with expiry: the cache and cooldown marks live here.

`MemoryKV` is the embedded default (one process); `RedisKV` is shared by every gateway replica.
Remaining lifetimes come from the store itself (Redis PTTL), so replicas never compare their own clocks.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from fleetplane.state.clock import SYSTEM_CLOCK, Clock


class KV(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, ttl: float) -> int:
        """Add one and return the count; the key expires `ttl` after its first increment."""
        ...

    async def remaining(self, keys: Sequence[str]) -> list[float | None]:
        """Seconds each key has left to live, None when absent."""
        ...

    async def close(self) -> None: ...


class MemoryKV:
    """An LRU with per-key expiry, bounded by entry count so a busy cache cannot grow without end."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, max_entries: int = 100_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._expiries: list[tuple[float, str]] = []

    def _alive(self, key: str) -> tuple[bytes, float] | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= self._clock.monotonic():
            del self._data[key]
            return None
        return item

    def _evict(self) -> None:
        now = self._clock.monotonic()
        while self._expiries and self._expiries[0][0] <= now:
            expiry, key = heapq.heappop(self._expiries)
            item = self._data.get(key)
            if item is not None and item[1] == expiry:
                del self._data[key]
        while len(self._data) > self._max:
            self._data.popitem(last=False)
        if len(self._expiries) > 2 * self._max:
            self._expiries = [(exp, k) for k, (_, exp) in self._data.items()]
            heapq.heapify(self._expiries)

    async def get(self, key: str) -> bytes | None:
        item = self._alive(key)
        if item is None:
            return None
        self._data.move_to_end(key)
        return item[0]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        expiry = self._clock.monotonic() + ttl
        self._data[key] = (value, expiry)
        self._data.move_to_end(key)
        heapq.heappush(self._expiries, (expiry, key))
        self._evict()

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, ttl: float) -> int:
        item = self._alive(key)
        if item is None:
            await self.set(key, b"1", ttl)
            return 1
        count = int(item[0]) + 1
        self._data[key] = (str(count).encode(), item[1])
        return count

    async def remaining(self, keys: Sequence[str]) -> list[float | None]:
        now = self._clock.monotonic()
        out: list[float | None] = []
        for key in keys:
            item = self._alive(key)
            out.append(None if item is None else item[1] - now)
        return out

    async def close(self) -> None:
        self._data.clear()


class RedisKV:
    def __init__(self, url: str, *, prefix: str = "fleetplane:") -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._prefix = prefix

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self._prefix + key)
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self._redis.set(self._prefix + key, value, px=max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def incr(self, key: str, ttl: float) -> int:
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(self._prefix + key)
        pipe.pexpire(self._prefix + key, max(1, int(ttl * 1000)), nx=True)
        count, _ = await pipe.execute()
        return int(count)

    async def remaining(self, keys: Sequence[str]) -> list[float | None]:
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(self._prefix + key)
        results = await pipe.execute()
        return [None if ms < 0 else ms / 1000 for ms in results]

    async def close(self) -> None:
        await self._redis.aclose()


def open_kv(redis_url: str | None, *, clock: Clock = SYSTEM_CLOCK) -> KV:
    """Redis when a URL is configured, else in-process."""
    if redis_url:
        return RedisKV(redis_url)
    return MemoryKV(clock=clock)
