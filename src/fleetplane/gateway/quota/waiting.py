"""Requests that may wait for their quota instead of failing at once.

Waiters are woken in order — interactive before batch, and round-robin across tenants within a priority,
so one busy tenant cannot starve another — when quota is released on this replica, or when their own
retry-after passes (quota freed by time, or released by another replica).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from fleetplane.state.clock import SYSTEM_CLOCK, Clock

PRIORITIES = ("interactive", "batch")
# How often a waiter without a retry-after looks again (releases on other replicas are not announced).
POLL = 0.25


@dataclass(eq=False)
class _Waiter:
    priority: str
    tenant: str
    event: asyncio.Event = field(default_factory=asyncio.Event)


class WaitQueue:
    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._queues: dict[str, OrderedDict[str, deque[_Waiter]]] = {p: OrderedDict() for p in PRIORITIES}

    def __len__(self) -> int:
        return sum(len(d) for q in self._queues.values() for d in q.values())

    async def wait(self, *, priority: str, tenant: str, retry_after: float | None, timeout: float) -> None:
        """Until woken, `retry_after` passes, or `timeout`; the caller then tries its admission again."""
        waiter = _Waiter(priority if priority in self._queues else "batch", tenant)
        queue = self._queues[waiter.priority]
        queue.setdefault(tenant, deque()).append(waiter)
        pause = min(timeout, retry_after if retry_after is not None else POLL)
        sleeper = asyncio.ensure_future(self._clock.sleep(max(0.0, pause)))
        woken = asyncio.ensure_future(waiter.event.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, woken):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            waiters = queue.get(tenant)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)
                if not waiters:
                    del queue[tenant]

    def notify(self, count: int = 1) -> int:
        """Wake the next `count` waiters in order; returns how many were woken."""
        woken = 0
        for priority in PRIORITIES:
            queue = self._queues[priority]
            # Round after round over the tenants, one waiter each, until enough are woken or none is left
            # in this priority: a tenant with several waiters gets its later ones in later rounds.
            progress = True
            while progress and woken < count:
                progress = False
                for tenant in list(queue):
                    if woken >= count:
                        return woken
                    pending = next((w for w in queue.get(tenant) or () if not w.event.is_set()), None)
                    if pending is None:
                        continue
                    pending.event.set()
                    woken += 1
                    progress = True
                    queue.move_to_end(tenant)  # the next release goes to another tenant first
            if woken >= count:
                return woken
        return woken
