"""The usage ledger's writer: requests append records in memory; a background task prices them and
writes them in batches, so no request waits on the database.

If the store is unreachable, records stay queued (up to `max_pending`, oldest dropped first and
counted) and are written when it returns; stopping the server flushes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass

from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.store.usage import UsageRecord, UsageRepository
from fleetplane.telemetry.cost import Rates, TokenUsage, cost_usd

log = logging.getLogger("fleetplane.gateway")


@dataclass
class Pending:
    record: UsageRecord
    usage: TokenUsage | None
    rates: Rates | None
    price_provider: str | None
    price_model: str | None


class UsageLedger:
    def __init__(
        self,
        repo: UsageRepository,
        *,
        clock: Clock = SYSTEM_CLOCK,
        interval: float = 0.5,
        batch: int = 1000,
        max_pending: int = 200_000,
    ) -> None:
        self._repo = repo
        self._clock = clock
        self._interval = interval
        self._batch = batch
        self._pending: deque[Pending] = deque()
        self._max_pending = max_pending
        self.dropped = 0
        self.written = 0
        self._wake = asyncio.Event()

    def record(self, pending: Pending) -> None:
        """Queue one request's record; never blocks, never raises."""
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(pending)
        if len(self._pending) >= self._batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write everything queued now; returns how many records were written."""
        written = 0
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
            records = [_priced(p) for p in batch]
            try:
                await self._repo.insert_many(records)
            except Exception:
                self._pending.extendleft(reversed(batch))
                raise
            written += len(records)
        self.written += written
        return written

    async def run(self) -> None:
        backoff = self._interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            try:
                await self.flush()
                backoff = self._interval
            except Exception as exc:
                backoff = min(backoff * 2, 30.0)
                log.warning(
                    "usage ledger: %d records wait for the store (%s); retrying in %.1fs",
                    self.pending,
                    exc,
                    backoff,
                )


def _priced(pending: Pending) -> UsageRecord:
    record = pending.record
    if pending.usage is not None and pending.price_model is not None:
        record.cost_usd = cost_usd(
            pending.usage, model=pending.price_model, rates=pending.rates, provider_id=pending.price_provider
        )
    return record
