"""A key-value store with expiry: the cache and cooldown marks live here.

`MemoryKV` is the embedded default (one process); `RedisKV` is shared by every gateway replica.
Remaining lifetimes come from the store itself (Redis PTTL), so replicas never compare their own clocks.

The KV sits on the hot path (cache lookup, cooldown read, cache store), and every caller treats a failed
call as "no cache / no cooldown". So `RedisKV` bounds each call by a short timeout and, after a failure,
stops asking Redis for a few seconds (raising `KVUnavailable` at once): a Redis brownout costs a request
nothing rather than a timeout per call.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from fleetplane.state.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("fleetplane.state")

T = TypeVar("T")

# What one entry costs besides its key and value: the tuple, the float, the dict and heap slots.
ENTRY_OVERHEAD = 120


class KVUnavailable(ConnectionError):
    """The shared KV cannot be reached now (or was not, a moment ago, and is being rested)."""


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
    """An LRU with per-key expiry, bounded by entry count and by bytes, so a busy cache cannot grow
    without end — neither by many small answers nor by a few huge ones."""

    def __init__(
        self, *, clock: Clock = SYSTEM_CLOCK, max_entries: int = 100_000, max_bytes: int = 256 * 2**20
    ) -> None:
        self._clock = clock
        self._max = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._expiries: list[tuple[float, str]] = []

    @staticmethod
    def _size(key: str, value: bytes) -> int:
        return len(key) + len(value) + ENTRY_OVERHEAD

    @property
    def size_bytes(self) -> int:
        """What the live entries cost, by the same measure as `max_bytes`."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def _drop(self, key: str) -> None:
        item = self._data.pop(key, None)
        if item is not None:
            self._bytes -= self._size(key, item[0])

    def _alive(self, key: str) -> tuple[bytes, float] | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= self._clock.monotonic():
            self._drop(key)
            return None
        return item

    def _evict(self) -> None:
        now = self._clock.monotonic()
        while self._expiries and self._expiries[0][0] <= now:
            expiry, key = heapq.heappop(self._expiries)
            item = self._data.get(key)
            if item is not None and item[1] == expiry:
                self._drop(key)
        while len(self._data) > self._max or self._bytes > self._max_bytes:
            key, (value, _) = self._data.popitem(last=False)
            self._bytes -= self._size(key, value)
        if len(self._expiries) > 2 * max(len(self._data), 1) + 64:
            self._expiries = [(exp, k) for k, (_, exp) in self._data.items()]
            heapq.heapify(self._expiries)

    def _put(self, key: str, value: bytes, expiry: float) -> None:
        self._drop(key)
        self._data[key] = (value, expiry)
        self._bytes += self._size(key, value)

    async def get(self, key: str) -> bytes | None:
        item = self._alive(key)
        if item is None:
            return None
        self._data.move_to_end(key)
        return item[0]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if self._size(key, value) > self._max_bytes:
            # Storing it would evict everything else and then itself; an oversized value is not kept.
            self._drop(key)
            return
        expiry = self._clock.monotonic() + ttl
        self._put(key, value, expiry)
        heapq.heappush(self._expiries, (expiry, key))
        self._evict()

    async def delete(self, key: str) -> None:
        self._drop(key)

    async def incr(self, key: str, ttl: float) -> int:
        item = self._alive(key)
        if item is None:
            await self.set(key, b"1", ttl)
            return 1
        count = int(item[0]) + 1
        self._put(key, str(count).encode(), item[1])
        return count

    async def remaining(self, keys: Sequence[str]) -> list[float | None]:
        now = self._clock.monotonic()
        out: list[float | None] = []
        for key in keys:
            item = self._alive(key)
            if item is None:
                out.append(None)
            else:
                # A mark consulted (a cooldown read by routing) is in use: keep it away from the LRU end.
                self._data.move_to_end(key)
                out.append(item[1] - now)
        return out

    async def close(self) -> None:
        self._data.clear()
        self._expiries.clear()
        self._bytes = 0


class RedisKV:
    """The KV on Redis, with a short timeout per call and a local breaker.

    `timeout` bounds each call whole (waiting for a connection and connecting included); after a call
    fails to reach Redis, every call raises `KVUnavailable` at once for `rest` seconds, then one call tries
    Redis again: its success ends the rest, its failure starts another. Redis errors that are not about
    reaching it (e.g. a wrong type) pass as is.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "fleetplane:",
        timeout: float = 0.25,
        rest: float = 3.0,
        max_connections: int = 64,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # A bounded pool: a burst of requests shares a few connections instead of opening one each, as
        # setting up hundreds at once takes longer than the whole call may.
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            # A retry would double the wait a caller pays; the breaker below decides when to try again.
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = redis.Redis(connection_pool=pool)
        self._prefix = prefix
        self._timeout = timeout
        self._rest = rest
        self._clock = clock
        self._resting_until: float | None = None
        self._probing = False

    @property
    def available(self) -> bool:
        """False while the breaker rests Redis after a failure."""
        return self._resting_until is None

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        from redis import exceptions as rx

        probe = False
        if self._resting_until is not None:
            if self._probing or self._clock.monotonic() < self._resting_until:
                raise KVUnavailable("Redis KV is resting after a failure; not asked")
            self._probing = probe = True
        try:
            async with asyncio.timeout(self._timeout):
                result = await operation()
        except (
            rx.ConnectionError,  # includes refused, reset, "loading" and auth errors
            rx.TimeoutError,
            rx.ReadOnlyError,  # a replica after failover: the primary is gone for now
            rx.OutOfMemoryError,
            rx.MasterDownError,
            rx.TryAgainError,
            TimeoutError,
            OSError,
        ) as exc:
            reason = str(exc) or type(exc).__name__
            if self._resting_until is None:
                log.warning("Redis KV unreachable (%s); not asked for %.1fs", reason, self._rest)
            self._resting_until = self._clock.monotonic() + self._rest
            raise KVUnavailable(f"Redis KV unreachable: {reason}") from exc
        finally:
            if probe:
                self._probing = False
        if probe:
            log.info("Redis KV reachable again")
            self._resting_until = None
        return result

    async def get(self, key: str) -> bytes | None:
        value = await self._call(lambda: self._redis.get(self._prefix + key))
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self._call(lambda: self._redis.set(self._prefix + key, value, px=max(1, int(ttl * 1000))))

    async def delete(self, key: str) -> None:
        await self._call(lambda: self._redis.delete(self._prefix + key))

    async def incr(self, key: str, ttl: float) -> int:
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(self._prefix + key)
        pipe.pexpire(self._prefix + key, max(1, int(ttl * 1000)), nx=True)
        count, _ = await self._call(pipe.execute)
        return int(count)

    async def remaining(self, keys: Sequence[str]) -> list[float | None]:
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(self._prefix + key)
        results = await self._call(pipe.execute)
        return [None if ms < 0 else ms / 1000 for ms in results]

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)


def open_kv(
    redis_url: str | None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    max_entries: int = 100_000,
    max_bytes: int = 256 * 2**20,
) -> KV:
    """Redis when a URL is configured, else in-process (bounded by `max_entries` and `max_bytes`)."""
    if redis_url:
        return RedisKV(redis_url, clock=clock)
    return MemoryKV(clock=clock, max_entries=max_entries, max_bytes=max_bytes)
