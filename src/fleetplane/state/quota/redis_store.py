"""The shared quota store: counters, reservations and leases in Redis, every operation one Lua script
call, so all gateway replicas admit against the same numbers and no interleaving can over-admit.

Keys, all under one hash tag (`{quota}`) so that a Redis Cluster keeps them on one node:

    <prefix>w:<limit key>     hash    t<bucket> = charged in that bucket, r<bucket> = of which reserved
    <prefix>c:<limit key>     zset    open reservations holding a concurrency place, by lease deadline
    <prefix>r:<reservation>   string  JSON record while open; a tombstone with a TTL once ended
    <prefix>leases            zset    open reservations by lease deadline

Scripts read Redis server time (TIME), never this replica's clock, unless `clock=` is given (tests): then
that clock's time is passed in, so tests move time without sleeping. See docs/quotas-engine.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.state.quota import codec
from fleetplane.state.quota.lua import Scripts
from fleetplane.state.quota.model import Charge, Decision, Limit, LimitUsage
from fleetplane.state.quota.periods import PeriodCache
from fleetplane.state.quota.store import UnknownReservation, check_admission

DEFAULT_PREFIX = "fleetplane:{quota}:"


class RedisQuotaStore:
    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        prefix: str = DEFAULT_PREFIX,
        expire_per_admit: int = 4,
        expire_batch: int = 100,
        settled_ttl: float = 300.0,
        timeout: float = 0.5,
        pool_timeout: float = 2.0,
        max_connections: int = 50,
    ) -> None:
        import redis.asyncio as redis

        # Admission is on every attempt's path: a Redis that does not answer (connect or reply) within
        # `timeout` is QuotaStoreUnavailable and the fail mode decides, rather than each request waiting
        # seconds. Scripts take well under a millisecond, so half a second is only ever an outage.
        # A blocking pool queues callers beyond `max_connections` (for at most `pool_timeout`) instead of
        # failing them: a burst of admissions must wait its turn, not turn into QuotaStoreUnavailable.
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
        )
        self._redis = redis.Redis(connection_pool=pool)
        self._scripts = Scripts(self._redis)
        self._clock = clock
        self._args = codec.LimitArgs(prefix, PeriodCache())
        self._leases = prefix + "leases"
        self._records = prefix + "r:"
        self._expire_per_admit = str(expire_per_admit)
        self._expire_batch = expire_batch
        self._settled_ms = str(max(1, int(settled_ttl * 1000)))

    def _times(self) -> tuple[str, float]:
        """The time argument for a script ('' = server time) and the local time for calendar bounds."""
        if self._clock is None:
            # Bounds come from this replica's clock; the script picks among them by server time.
            return "", SYSTEM_CLOCK.now()
        now = self._clock.now()
        return repr(now), now

    async def admit(
        self, reservation_id: str, limits: Sequence[Limit], charge: Charge, *, lease: float
    ) -> Decision:
        check_admission(limits, lease)
        when, now = self._times()
        keys = [self._leases, self._records + reservation_id]
        keys.extend(self._args.key(limit) for limit in limits)
        args: list[str | bytes] = [reservation_id, when, codec.number(lease), self._expire_per_admit]
        args += [self._settled_ms, self._records, codec.charge_arg(charge)]
        args += [self._args.lines(limits, now), self._args.descriptions(limits)]
        reply = await self._scripts.run("admit", keys, args)
        status = int(reply[0])
        if status == 0:
            return codec.denied(limits[int(reply[1]) - 1], reply[2])
        if status == 2:  # a replay: the first decision, over the limits it was made on
            return codec.admitted(reservation_id, reply[1], [self._args.caller_key(k) for k in reply[2]])
        return codec.admitted(reservation_id, reply[1], [limit.key for limit in limits])

    async def extend(self, reservation_id: str, delta: Charge) -> Decision:
        when, _ = self._times()
        reply = await self._scripts.run(
            "extend", [self._records + reservation_id], [when, codec.charge_arg(delta)]
        )
        status = int(reply[0])
        if status == -1:
            raise UnknownReservation(reservation_id)
        if status == 0:
            return codec.denied(codec.undescribe(reply[1].decode()), reply[2])
        return codec.admitted(reservation_id, reply[1], [self._args.caller_key(k) for k in reply[2]])

    async def commit(self, reservation_id: str, used: Charge, *, lease: float | None = None) -> bool:
        if lease is not None and not lease > 0:
            raise ValueError(f"a lease must be > 0 seconds, not {lease!r}")
        when, _ = self._times()
        keys = [self._leases, self._records + reservation_id]
        renewal = "" if lease is None else codec.number(lease)
        args: list[str | bytes] = [when, renewal, codec.charge_arg(used), self._records]
        return bool(await self._scripts.run("commit", keys, args))

    async def _end(self, reservation_id: str, final: Charge | None) -> bool:
        when, _ = self._times()
        keys = [self._leases, self._records + reservation_id]
        amounts = b"" if final is None else codec.charge_arg(final)
        args: list[str | bytes] = [when, self._settled_ms, self._records, amounts]
        return bool(await self._scripts.run("settle", keys, args))

    async def settle(self, reservation_id: str, final: Charge) -> bool:
        return await self._end(reservation_id, final)

    async def release(self, reservation_id: str) -> bool:
        return await self._end(reservation_id, None)

    async def expire(self) -> int:
        total = 0
        while True:
            # Batches keep each script short: Redis serves nobody else while one runs.
            when, _ = self._times()
            args = [when, str(self._expire_batch), self._records, self._settled_ms]
            ended, seen = await self._scripts.run("expire", [self._leases], args)
            total += int(ended)
            if int(seen) < self._expire_batch:
                return total

    async def usage(self, limits: Sequence[Limit]) -> list[LimitUsage]:
        if not limits:
            return []
        when, now = self._times()
        keys = [self._args.key(limit) for limit in limits]
        reply = await self._scripts.run("usage", keys, [when, self._args.lines(limits, now)])
        rows = codec.usage_rows(reply, len(limits))
        return [
            LimitUsage(limit.key, limit.limit, used, reserved, reset)
            for limit, (used, reserved, reset) in zip(limits, rows, strict=True)
        ]

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)
