"""The span store: spans and events written in batches off the hot path, kept for a retention period,
and read back through the trace, usage and sampling queries.

Writers (the OTLP receiver on the event loop, the in-process exporters on the SDK's batch threads) only
append to an in-memory queue; one task writes it every `interval` seconds, or sooner once `batch` rows
wait. The task shares the event loop with the gateway's requests, so it writes in slices of at most
`slice_rows` rows, one transaction each, and yields to the loop between them: a request never waits
behind more than one slice (a few milliseconds), however much has queued.

The queue is bounded: past `max_pending` rows the in-process exporters' newest rows are dropped and
counted, and the receiver is told there is no room (it answers 503 so the sender retries). Inserts are
idempotent on (trace_id, span_id) for spans and on a digest of the record for events, so a retried
export or a batch written twice (a write cut off after it committed) stores nothing twice.

When the database is away, batches stay queued and writing is retried with back-off; at shutdown what
cannot be written within the time bound is dropped (and counted): telemetry is not the usage ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from fleetplane.store.db import Store
from fleetplane.store.tables import telemetry_events, telemetry_spans
from fleetplane.telemetry.records import EventRecord, SpanRecord
from fleetplane.telemetry.spanquery import sample_key
from fleetplane.telemetry.tracequery import TraceQueries
from fleetplane.telemetry.usagequery import UsageQueries

log = logging.getLogger("fleetplane.telemetry")

RETENTION_ENV = "FLEETPLANE_TELEMETRY_RETENTION"
DEFAULT_RETENTION = 7 * 86400.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_retention(text: str | None) -> float | None:
    """`7d`, `36h`, `90m`, `2w` or a number of seconds; `0`/`off`/`forever` keep spans forever (None)."""
    if text is None or not text.strip():
        return DEFAULT_RETENTION
    value = text.strip().lower()
    if value in ("0", "off", "forever", "none"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", value)
    if match is None:
        raise ValueError(f"{text!r} is not a retention period; expected e.g. 7d, 36h, 90m, or off")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    return seconds if seconds > 0 else None


class SpanStore(TraceQueries, UsageQueries):
    """Writes and reads telemetry on a `Store`. Start it (`start()`) to have queued rows written; the
    queries (`list_traces`, `get_trace`, `usage`, `sample`) work whether it is started or not."""

    def __init__(
        self,
        store: Store,
        *,
        retention: float | None = DEFAULT_RETENTION,
        interval: float = 0.5,
        batch: int = 1000,
        slice_rows: int = 64,
        max_pending: int = 100_000,
        retention_every: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.retention = retention
        self.clock = clock
        self._interval = interval
        self._batch = batch
        self._slice = max(1, min(slice_rows, batch))
        self._max_pending = max_pending
        self._retention_every = retention_every
        self._lock = threading.Lock()
        self._spans: deque[SpanRecord] = deque()
        self._events: deque[EventRecord] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self._analyzed_at = 0  # self.written at the last ANALYZE
        self.written = 0
        self.dropped = 0
        self.deleted = 0

    # ---- queueing (any thread) -------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._spans) + len(self._events)

    def submit(
        self, spans: Sequence[SpanRecord] = (), events: Sequence[EventRecord] = (), *, whole: bool = False
    ) -> bool:
        """Queue rows to be written; never blocks on the database.

        With `whole`, all or nothing: False (and nothing queued) when they do not all fit. Otherwise
        what fits is queued and the rest dropped and counted; True when nothing was dropped."""
        with self._lock:
            room = self._max_pending - self.pending
            wanted = len(spans) + len(events)
            if wanted > room and whole:
                return False
            take_spans = list(spans[: max(room, 0)])
            take_events = list(events[: max(room - len(take_spans), 0)])
            self._spans.extend(take_spans)
            self._events.extend(take_events)
            lost = wanted - len(take_spans) - len(take_events)
            self.dropped += lost
            full = self.pending >= self._batch
        if lost:
            log.warning("span store: queue full, %d rows dropped (%d in all)", lost, self.dropped)
        if full:
            self._poke()
        return lost == 0

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(wake.set)

    def _take(self) -> tuple[list[SpanRecord], list[EventRecord]]:
        with self._lock:
            spans = [self._spans.popleft() for _ in range(min(self._slice, len(self._spans)))]
            room = self._slice - len(spans)
            events = [self._events.popleft() for _ in range(min(room, len(self._events)))]
        return spans, events

    def _put_back(self, spans: list[SpanRecord], events: list[EventRecord]) -> None:
        with self._lock:
            self._spans.extendleft(reversed(spans))
            self._events.extendleft(reversed(events))

    # ---- writing (the event loop) ----------------------------------------------------------------

    async def flush(self) -> int:
        """Write everything queued now, slice by slice; returns how many rows were written. Waits for a
        batch the writer task has in flight, so what was queued before the call is stored when it
        returns."""
        async with self._flushing:
            written = 0
            while True:
                if written:
                    # Let the requests that arrived during the last slice run before the next one.
                    await asyncio.sleep(0)
                spans, events = self._take()
                if not spans and not events:
                    return written
                try:
                    await self.write(spans, events)
                except BaseException:
                    # Cancelled too (a bounded shutdown): the batch goes back, to be retried.
                    self._put_back(spans, events)
                    raise
                written += len(spans) + len(events)
                self.written += len(spans) + len(events)
                await self._refresh_statistics()

    async def _refresh_statistics(self) -> None:
        """On Postgres, ANALYZE the tables each time this writer has doubled what it wrote (from 1,000).

        Queries join the span table with itself; planned on the statistics of a fresh table (a few
        rows) they become nested loops that take minutes once it holds thousands. Autovacuum catches up
        within a minute or so; this closes the gap while a store fills, at log2(rows) cheap ANALYZEs."""
        if self.store.dialect != "postgresql" or self.written < max(1000, 2 * self._analyzed_at):
            return
        async with self.store.engine.begin() as conn:
            await conn.execute(text("ANALYZE telemetry_spans, telemetry_events"))
        self._analyzed_at = self.written

    async def write(self, spans: Sequence[SpanRecord], events: Sequence[EventRecord]) -> None:
        """Insert rows at once in one transaction, skipping any already stored."""
        span_rows = list({(r["trace_id"], r["span_id"]): r for r in map(span_row, spans)}.values())
        event_rows = list({r["event_id"]: r for r in map(event_row, events)}.values())
        dialect_insert = pg_insert if self.store.dialect == "postgresql" else sqlite_insert
        async with self.store.engine.begin() as conn:
            if span_rows:
                statement = dialect_insert(telemetry_spans).on_conflict_do_nothing(
                    index_elements=["trace_id", "span_id"]
                )
                await conn.execute(statement, span_rows)
            if event_rows:
                statement = dialect_insert(telemetry_events).on_conflict_do_nothing(
                    index_elements=["event_id"]
                )
                await conn.execute(statement, event_rows)

    async def delete_older_than(self, cutoff: float) -> int:
        """Delete spans that started, and events that happened, before `cutoff` (UNIX seconds)."""
        cutoff_ns = int(cutoff * 1e9)
        async with self.store.engine.begin() as conn:
            spans = await conn.execute(delete(telemetry_spans).where(telemetry_spans.c.start_ns < cutoff_ns))
            events = await conn.execute(
                delete(telemetry_events).where(telemetry_events.c.time_ns < cutoff_ns)
            )
        gone = int(spans.rowcount or 0) + int(events.rowcount or 0)
        self.deleted += gone
        return gone

    async def apply_retention(self) -> int:
        if self.retention is None:
            return 0
        return await self.delete_older_than(self.clock() - self.retention)

    async def run(self) -> None:
        """Write queued rows until cancelled; apply retention every `retention_every` seconds."""
        assert self._wake is not None, "start() the span store first"
        backoff = self._interval
        next_retention = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            try:
                await self.flush()
                if time.monotonic() >= next_retention:
                    deleted = await self.apply_retention()
                    if deleted:
                        log.info("span store: retention deleted %d rows", deleted)
                    next_retention = time.monotonic() + self._retention_every
                backoff = self._interval
            except Exception as exc:
                backoff = min(backoff * 2, 30.0)
                log.warning(
                    "span store: write failed (%d rows wait, retry in %.1fs): %s", self.pending, backoff, exc
                )

    async def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self.run(), name="fleetplane-span-store")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the writer task and flush what is queued for at most `timeout` seconds."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except Exception as exc:
            lost = self.pending
            with self._lock:
                self._spans.clear()
                self._events.clear()
                self.dropped += lost
            log.error(
                "span store: %d rows could not be written at shutdown: %s", lost, exc or type(exc).__name__
            )
        self._loop = None
        self._wake = None


# Rows are the records' fields as they are: a shallow copy of the instance dict, not
# `dataclasses.asdict`, which deep-copies every attribute, event and link (it was 8% of a gateway's
# busy time with telemetry on). Nothing mutates a record once queued, and the JSON columns serialize
# the nested values at insert.


def span_row(record: SpanRecord) -> dict[str, Any]:
    row = dict(record.__dict__)
    row["sample_key"] = sample_key(record.trace_id)
    return row


def event_row(record: EventRecord) -> dict[str, Any]:
    row = dict(record.__dict__)
    row["event_id"] = record.event_id
    return row
