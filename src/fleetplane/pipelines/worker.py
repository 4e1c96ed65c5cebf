"""A worker: takes runs that are pending (or whose worker died), runs a turn on each under a lease it keeps
renewing, and decides approvals past their timeout.

Any number of workers, in any number of processes, can share one store: taking a run is one conditional
UPDATE, and a worker whose lease lapsed can write nothing more (the journal's writes are fenced), so two
workers never run the same step. A worker that dies leaves its lease to expire; the next worker resumes
the run from its journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from fleetplane.pipelines.approvals import Approvals
from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.engine import take_turn
from fleetplane.pipelines.runs import Fence, RunRecord, RunStore


def worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(self, deps: Deps, *, owner: str | None = None, poll: float = 0.5, batch: int = 10) -> None:
        self.deps = deps
        self.owner = owner or worker_id()
        self.poll = poll
        self.batch = batch
        self._runs = RunStore(deps.store)
        self._stopping = asyncio.Event()

    async def run_once(self) -> list[RunRecord]:
        """Decide expired approvals, then take a turn on each claimable run; the runs as they ended."""
        await Approvals(self.deps.store).expire(now=self.deps.clock.now())
        ended = []
        for run_id in await self._runs.claimable(self.deps.clock.now(), limit=self.batch):
            result = await self.turn(run_id)
            if result is not None:
                ended.append(result)
        return ended

    async def turn(self, run_id: str) -> RunRecord | None:
        """One turn with the lease renewed in the background (a third of its time-to-live apart)."""
        heartbeat = asyncio.create_task(self._heartbeat(run_id))
        try:
            return await take_turn(self.deps, run_id, self.owner)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def drain(self, max_turns: int = 1000) -> list[RunRecord]:
        """Run turns until nothing is claimable (tests and `fleetplane run`)."""
        ended: list[RunRecord] = []
        for _ in range(max_turns):
            batch = await self.run_once()
            if not batch:
                break
            ended.extend(batch)
        return ended

    async def serve(self) -> None:
        """Poll until `stop()`."""
        while not self._stopping.is_set():
            try:
                busy = await self.run_once()
            except Exception:  # a store hiccup must not end the worker; the next poll tries again
                logging.getLogger(__name__).exception("pipeline worker %s: a poll failed", self.owner)
                busy = []
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.poll)

    def stop(self) -> None:
        self._stopping.set()

    async def _heartbeat(self, run_id: str) -> None:
        interval = self.deps.lease_ttl / 3
        while True:
            await self.deps.clock.sleep(interval)
            run = await self._runs.get(run_id)
            if run is None or run.lease_owner != self.owner:
                return
            await self._runs.renew(
                Fence(run_id, self.owner, run.lease_epoch), now=self.deps.clock.now(), ttl=self.deps.lease_ttl
            )
