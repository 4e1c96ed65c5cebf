"""The embedded quota store: every counter, reservation and lease in this process.

Each method runs from its first line to its last without an `await`, so on one event loop no other
admission can interleave between a check and its charge: admission is atomic by construction. Not
thread-safe; one store belongs to one event loop. Time is `clock.now()` for windows and leases alike.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.state.quota.model import (
    CHARGED_METRICS,
    Admitted,
    Charge,
    Decision,
    Denied,
    Limit,
    LimitUsage,
)
from fleetplane.state.quota.pieces import Piece, changes, contributions, reshape
from fleetplane.state.quota.store import UnknownReservation, check_admission
from fleetplane.state.quota.windows import (
    EPS,
    Geometries,
    Geometry,
    holders_reset_after,
    holders_retry_after,
    window_reset_after,
    window_retry_after,
)


@dataclass
class _Entry:
    """One limit of a reservation; `geo` is None for a concurrency limit."""

    limit: Limit
    geo: Geometry | None
    pieces: list[Piece]


@dataclass
class _Reservation:
    id: str
    lease: float
    deadline: float
    held: dict[str, float]
    committed: dict[str, float]
    entries: list[_Entry]
    decision: Admitted


@dataclass
class _Look:
    """One limit as an admission sees it: what its window holds and whether `requested` fits."""

    limit: Limit
    geo: Geometry | None
    total: float
    reserved: float
    requested: float
    held: list[tuple[int, float]]
    deadlines: list[float]
    now: float

    @property
    def fits(self) -> bool:
        return self.total + self.requested <= self.limit.limit + EPS

    def retry_after(self) -> float | None:
        if self.geo is None:
            return holders_retry_after(self.deadlines, self.limit.limit, self.now)
        return window_retry_after(self.geo, self.held, self.total, self.requested, self.limit.limit, self.now)

    def denied(self) -> Denied:
        used = self.total - self.reserved
        return Denied(self.limit, used, self.reserved, self.requested, self.retry_after())


def binding(refusals: Sequence[Denied]) -> Denied:
    """Of the limits that refused, the one that frees up last: the request fits only when all do."""
    best = refusals[0]
    for d in refusals[1:]:
        if best.retry_after is not None and (d.retry_after is None or d.retry_after > best.retry_after):
            best = d
    return best


# Ended reservations remembered for idempotent replays of `admit`, at most: each keeps its decision
# (remaining and reset per limit, ~1.3 kB with 10 limits), and at 200 req/s a 300 s memory would hold
# 60,000 of them. In one process an admission is replayed at once or never (no answer is lost on a
# network), so the newest few thousand are plenty; an older one replayed is admitted anew.
MAX_SETTLED = 4096


class MemoryQuotaStore:
    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        expire_per_admit: int = 4,
        settled_ttl: float = 300.0,
        max_settled: int = MAX_SETTLED,
    ) -> None:
        self._clock = clock
        self._expire_per_admit = expire_per_admit
        self._settled_ttl = settled_ttl
        self._max_settled = max_settled
        self._geometries = Geometries()
        self._windows: dict[str, dict[int, list[float]]] = {}  # limit key -> bucket -> [total, reserved]
        # When each counter's last write leaves its window (as a Redis key's TTL): then the counter goes.
        self._idle_at: dict[str, float] = {}
        self._idle: list[tuple[float, str]] = []
        self._holders: dict[str, dict[str, float]] = {}  # concurrency key -> reservation -> lease deadline
        self._open: dict[str, _Reservation] = {}
        self._leases: list[tuple[float, str]] = []  # heap; stale entries (renewed, ended) are skipped
        self._settled: dict[str, tuple[float, Admitted]] = {}  # ended reservations, for idempotent replays
        self._settled_order: deque[tuple[float, str]] = deque()

    # -- reading ------------------------------------------------------------------------------------------

    def _look(self, limit: Limit, geo: Geometry | None, requested: float, now: float) -> _Look:
        if geo is None:
            deadlines = list(self._holders.get(limit.key, {}).values())
            return _Look(limit, None, float(len(deadlines)), 0.0, 1.0, [], deadlines, now)
        cur = geo.current(now)
        total = reserved = 0.0
        held: list[tuple[int, float]] = []
        buckets = self._windows.get(limit.key, {})
        for idx in list(buckets):
            t, r = buckets[idx]
            if geo.counts(idx, cur):
                total += t
                reserved += r
                held.append((idx, t))
            elif geo.stale(idx, cur):
                del buckets[idx]
        if not buckets:
            # Idle counters go, so a million end users who each called once do not stay in memory.
            self._windows.pop(limit.key, None)
        return _Look(limit, geo, total, reserved, requested, held, [], now)

    def _outlook(self, entries: Sequence[_Entry], now: float) -> tuple[dict[str, float], dict[str, float]]:
        """Remaining and reset-after per limit key, as headers report them after a successful charge."""
        remaining: dict[str, float] = {}
        reset: dict[str, float] = {}
        for e in entries:
            look = self._look(e.limit, e.geo, 0.0, now)
            remaining[e.limit.key] = max(0.0, e.limit.limit - look.total)
            if e.geo is None:
                after = holders_reset_after(look.deadlines, now)
            else:
                after = window_reset_after(e.geo, look.held, e.geo.current(now), now)
            reset[e.limit.key] = 0.0 if after is None else after
        return remaining, reset

    # -- writing ------------------------------------------------------------------------------------------

    def _move(
        self, res: _Reservation, held: dict[str, float], committed: dict[str, float], now: float
    ) -> None:
        """Bring every windowed entry of `res` from its current held/committed amounts to new ones."""
        for e in res.entries:
            if e.geo is None:
                continue
            m = e.limit.metric
            cur = e.geo.current(now)
            new_pieces = reshape(e.pieces, res.held[m], held[m], cur)
            before = contributions(e.pieces, res.held[m], res.committed[m])
            after = contributions(new_pieces, held[m], committed[m])
            buckets = self._windows.setdefault(e.limit.key, {})
            for idx, dt, dr in changes(before, after):
                if not e.geo.counts(idx, cur):
                    continue  # the bucket has left the window: the adjustment no longer matters
                cell = buckets.setdefault(idx, [0.0, 0.0])
                cell[0] += dt
                cell[1] += dr
                if abs(cell[0]) <= EPS and abs(cell[1]) <= EPS:
                    del buckets[idx]
            e.pieces = new_pieces
            if cur is not None:
                self._touch(e.limit.key, e.geo.leaves_at(cur))
        res.held, res.committed = held, committed

    def _touch(self, key: str, idle_at: float | None) -> None:
        if idle_at is not None and self._idle_at.get(key, float("-inf")) < idle_at:
            self._idle_at[key] = idle_at
            heapq.heappush(self._idle, (idle_at, key))

    def _first_charge(self, entry: _Entry, amount: float, cur: int | None) -> None:
        """A new reservation's first charge: one piece, all of it reserved, in the current bucket (what
        `_move` from nothing computes, without its bookkeeping: this is the hot path)."""
        if amount == 0 or cur is None or entry.geo is None:
            return
        cell = self._windows.setdefault(entry.limit.key, {}).setdefault(cur, [0.0, 0.0])
        cell[0] += amount
        cell[1] += amount
        entry.pieces = [(cur, amount)]
        self._touch(entry.limit.key, entry.geo.leaves_at(cur))

    def _renew(self, res: _Reservation, deadline: float) -> None:
        res.deadline = deadline
        heapq.heappush(self._leases, (deadline, res.id))
        for e in res.entries:
            if e.geo is None:
                self._holders.setdefault(e.limit.key, {})[res.id] = deadline

    def _end(self, res: _Reservation, final: dict[str, float], now: float) -> None:
        self._move(res, final, final, now)
        for e in res.entries:
            if e.geo is None:
                holders = self._holders.get(e.limit.key, {})
                holders.pop(res.id, None)
                if not holders:
                    self._holders.pop(e.limit.key, None)
        del self._open[res.id]
        self._settled[res.id] = (now + self._settled_ttl, res.decision)
        self._settled_order.append((now + self._settled_ttl, res.id))
        while len(self._settled_order) > self._max_settled:
            _, rid = self._settled_order.popleft()
            self._settled.pop(rid, None)
        if len(self._leases) > 2 * len(self._open) + 64:
            # Settled reservations leave their lease entries behind until the lease would have ended
            # (120 s of traffic): rebuilt from the open ones, the heap stays the size of what is open.
            self._leases = [(r.deadline, r.id) for r in self._open.values()]
            heapq.heapify(self._leases)

    def _expire_due(self, now: float, most: int | None) -> int:
        ended = 0
        while self._leases and self._leases[0][0] <= now and (most is None or ended < most):
            deadline, rid = heapq.heappop(self._leases)
            res = self._open.get(rid)
            if res is None or res.deadline != deadline:
                continue  # the lease was renewed or the reservation already ended
            self._end(res, dict(res.committed), now)
            ended += 1
        while self._idle and self._idle[0][0] <= now:
            idle_at, key = heapq.heappop(self._idle)
            if self._idle_at.get(key) == idle_at:
                del self._idle_at[key]
                self._windows.pop(key, None)
        while self._settled_order and self._settled_order[0][0] <= now:
            _, rid = self._settled_order.popleft()
            item = self._settled.get(rid)
            if item is not None and item[0] <= now:
                del self._settled[rid]
        return ended

    # -- the protocol -------------------------------------------------------------------------------------

    async def admit(
        self, reservation_id: str, limits: Sequence[Limit], charge: Charge, *, lease: float
    ) -> Decision:
        check_admission(limits, lease)
        now = self._clock.now()
        self._expire_due(now, self._expire_per_admit)
        known = self._open.get(reservation_id)
        if known is not None:
            return known.decision
        ended = self._settled.get(reservation_id)
        if ended is not None and ended[0] > now:
            return ended[1]
        looks = []
        for limit in limits:
            geo = None if limit.window is None else self._geometries.of(limit.window, now)
            requested = 1.0 if geo is None else charge.amount(limit.metric)
            looks.append(self._look(limit, geo, requested, now))
        refusals = [look.denied() for look in looks if not look.fits]
        if refusals:
            return binding(refusals)
        held = {m: charge.amount(m) for m in CHARGED_METRICS}
        deadline = now + lease
        entries: list[_Entry] = []
        remaining: dict[str, float] = {}
        reset: dict[str, float] = {}
        for look in looks:
            entry = _Entry(look.limit, look.geo, [])
            entries.append(entry)
            key = look.limit.key
            remaining[key] = max(0.0, look.limit.limit - (look.total + look.requested))
            if look.geo is None:
                after = holders_reset_after([*look.deadlines, deadline], now)
            else:
                cur = look.geo.current(now)
                self._first_charge(entry, look.requested, cur)
                held_now = look.held if cur is None else [*look.held, (cur, look.requested)]
                after = window_reset_after(look.geo, held_now, cur, now)
            reset[key] = 0.0 if after is None else after
        decision = Admitted(reservation_id, remaining, reset)
        res = _Reservation(reservation_id, lease, deadline, held, dict.fromkeys(held, 0.0), entries, decision)
        self._open[reservation_id] = res
        self._renew(res, deadline)
        return decision

    async def extend(self, reservation_id: str, delta: Charge) -> Decision:
        now = self._clock.now()
        res = self._open.get(reservation_id)
        if res is None:
            raise UnknownReservation(reservation_id)
        looks = [
            self._look(e.limit, e.geo, delta.amount(e.limit.metric), now)
            for e in res.entries
            if e.geo is not None and delta.amount(e.limit.metric) > 0
        ]
        refusals = [look.denied() for look in looks if not look.fits]
        if refusals:
            return binding(refusals)
        held = {m: res.held[m] + delta.amount(m) for m in CHARGED_METRICS}
        self._move(res, held, dict(res.committed), now)
        remaining, reset = self._outlook(res.entries, now)
        return Admitted(reservation_id, remaining, reset)

    async def commit(self, reservation_id: str, used: Charge, *, lease: float | None = None) -> bool:
        if lease is not None and not lease > 0:
            raise ValueError(f"a lease must be > 0 seconds, not {lease!r}")
        now = self._clock.now()
        res = self._open.get(reservation_id)
        if res is None:
            return False
        committed = {m: max(res.committed[m], used.amount(m)) for m in CHARGED_METRICS}
        held = {m: max(res.held[m], committed[m]) for m in CHARGED_METRICS}
        self._move(res, held, committed, now)
        if lease is not None:
            res.lease = lease
        self._renew(res, now + res.lease)
        return True

    async def settle(self, reservation_id: str, final: Charge) -> bool:
        res = self._open.get(reservation_id)
        if res is None:
            return False
        self._end(res, {m: final.amount(m) for m in CHARGED_METRICS}, self._clock.now())
        return True

    async def release(self, reservation_id: str) -> bool:
        res = self._open.get(reservation_id)
        if res is None:
            return False
        self._end(res, dict(res.committed), self._clock.now())
        return True

    async def expire(self) -> int:
        return self._expire_due(self._clock.now(), None)

    async def usage(self, limits: Sequence[Limit]) -> list[LimitUsage]:
        now = self._clock.now()
        out = []
        for limit in limits:
            geo = None if limit.window is None else self._geometries.of(limit.window, now)
            look = self._look(limit, geo, 0.0, now)
            if geo is None:
                reset = holders_reset_after(look.deadlines, now)
            else:
                reset = window_reset_after(geo, look.held, geo.current(now), now)
            out.append(LimitUsage(limit.key, limit.limit, look.total - look.reserved, look.reserved, reset))
        return out

    def sizes(self) -> dict[str, int]:
        """Entries per internal structure: what a leak check counts (each is bounded by a window, a
        lease or `max_settled`)."""
        return {
            "windows": len(self._windows),
            "idle": len(self._idle),
            "holders": len(self._holders),
            "open": len(self._open),
            "leases": len(self._leases),
            "settled": len(self._settled),
        }

    async def close(self) -> None:
        self._windows.clear()
        self._idle_at.clear()
        self._idle.clear()
        self._holders.clear()
        self._open.clear()
        self._leases.clear()
        self._settled.clear()
        self._settled_order.clear()
