"""The usage ledger's writer: requests append records in memory; a background task prices them and
writes them in batches, so no request waits on the database.

If the store is unreachable, records stay queued (up to `max_pending`, oldest dropped first and
counted) and are written when it returns. Stopping the server flushes what is left within a time bound;
what the store cannot take by then is spilled to a JSONL file under the spill directory
(`$FLEETPLANE_HOME/spill/`), and the next start replays those files into the store and deletes each once
it is written. Inserts are idempotent by request id, so a record both written and spilled (a write cut
off by the time bound after it committed) is still recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.store.usage import UsageRecord, UsageRepository
from fleetplane.telemetry.cost import Rates, TokenUsage, cost_usd

log = logging.getLogger("fleetplane.gateway")

SPILL_SUFFIX = ".jsonl"
_RECORD_FIELDS = {f.name for f in fields(UsageRecord)}


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
        spill_dir: Path | None = None,
    ) -> None:
        self._repo = repo
        self._spill_dir = spill_dir
        # Spill files of an earlier run wait for the store; `run` retries them until one replay succeeds.
        self._replay_due = spill_dir is not None
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
            try:
                await self._repo.insert_many([_priced(p) for p in batch])
            except BaseException:
                # Cancelled too (a bounded shutdown): the batch goes back, to be retried or spilled.
                self._pending.extendleft(reversed(batch))
                raise
            written += len(batch)
            self.written += len(batch)
        return written

    async def close(self, timeout: float) -> int:
        """Flush for at most `timeout` seconds, then spill what is left; returns how many were spilled."""
        try:
            await asyncio.wait_for(self.flush(), timeout)
            return 0
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            log.error("usage ledger: %d records could not be written at shutdown: %s", self.pending, reason)
        return self.spill()

    def spill(self) -> int:
        """Write every queued record to a new spill file and forget them; returns how many."""
        if not self._pending:
            return 0
        count = self.pending
        if self._spill_dir is None:
            log.error("usage ledger: no spill directory; %d records are lost", count)
            return 0
        try:
            path = _write_spill(self._spill_dir, [_priced(p) for p in self._pending])
        except Exception as exc:
            log.error("usage ledger: could not spill %d records to %s: %s", count, self._spill_dir, exc)
            return 0
        self._pending.clear()
        log.warning("usage ledger: %d records spilled to %s, to be written at the next start", count, path)
        return count

    async def replay(self) -> int:
        """Write every spill file's records to the store, deleting each file once it is written.

        Stops at the first file the store will not take (it stays for the next attempt); returns how many
        records were written."""
        if self._spill_dir is None:
            return 0
        written = 0
        for path in spill_files(self._spill_dir):
            records = list(read_spill(path))
            for start in range(0, len(records), self._batch):
                await self._repo.insert_many(records[start : start + self._batch])
            with contextlib.suppress(FileNotFoundError):  # another replica sharing the home replayed it too
                path.unlink()
            written += len(records)
            log.info("usage ledger: replayed %d spilled records from %s", len(records), path)
        self._replay_due = False
        return written

    async def run(self) -> None:
        backoff = self._interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            try:
                await self.flush()
                if self._replay_due:
                    await self.replay()
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


def _encode(record: UsageRecord) -> bytes:
    row = asdict(record)
    row["cost_usd"] = str(record.cost_usd)  # a string keeps the Decimal exact
    return orjson.dumps(row)


def _decode(line: bytes) -> UsageRecord:
    row: dict[str, Any] = orjson.loads(line)
    row = {k: v for k, v in row.items() if k in _RECORD_FIELDS}
    row["cost_usd"] = Decimal(row.get("cost_usd") or 0)
    return UsageRecord(**row)


def _write_spill(directory: Path, records: list[UsageRecord]) -> Path:
    """One new file per spill, written under a temporary name and renamed, so a replay never reads half."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"usage-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}"
    partial = directory / (name + ".partial")
    with partial.open("wb") as out:
        for record in records:
            out.write(_encode(record) + b"\n")
        out.flush()
        os.fsync(out.fileno())
    final = directory / (name + SPILL_SUFFIX)
    partial.rename(final)
    return final


def spill_files(directory: Path) -> list[Path]:
    """The complete spill files in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("usage-*" + SPILL_SUFFIX))


def read_spill(path: Path) -> Iterator[UsageRecord]:
    """A spill file's records; a line that does not parse is logged and skipped (it never will)."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield _decode(line)
            except Exception as exc:
                log.error(
                    "usage ledger: %s line %d is not a usage record and is skipped: %s", path, number, exc
                )
