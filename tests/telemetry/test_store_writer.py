"""The span store's writer and retention, on SQLite and Postgres: rows queued from other threads are
written off the caller's path, once each; the queue is bounded and counts what it drops; retention deletes
exactly what is older than the period."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from fleetplane.store.db import Store
from fleetplane.store.tables import telemetry_events, telemetry_spans
from fleetplane.telemetry.records import EventRecord, SpanRecord, event_record, span_record
from fleetplane.telemetry.spanstore import SpanStore, parse_retention

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url)
    yield store
    await store.close()


def span(
    trace: int, span_id: int, *, start: float = NOW, parent: int | None = None, **attrs: object
) -> SpanRecord:
    return span_record(
        trace_id=f"{trace:032x}",
        span_id=f"{span_id:016x}",
        parent_span_id=f"{parent:016x}" if parent else None,
        name=f"span {span_id}",
        kind="internal",
        start_ns=int(start * 1e9),
        end_ns=int(start * 1e9) + 1000,
        status_code="unset",
        status_message=None,
        attributes=dict(attrs),
        events=[],
        links=[],
        resource={},
        scope_name=None,
        scope_version=None,
    )


def event(trace: int, at: float, name: str = "e") -> EventRecord:
    return event_record(
        trace_id=f"{trace:032x}",
        span_id=None,
        time_ns=int(at * 1e9),
        observed_ns=int(at * 1e9),
        event_name=name,
        severity_number=None,
        severity_text=None,
        body={"text": name},
        attributes={},
        resource={},
        scope_name=None,
    )


async def counts(store: Store) -> tuple[int, int]:
    async with store.engine.connect() as conn:
        spans = (await conn.execute(select(func.count()).select_from(telemetry_spans))).scalar()
        events = (await conn.execute(select(func.count()).select_from(telemetry_events))).scalar()
    return int(spans or 0), int(events or 0)


async def test_rows_queued_from_another_thread_are_written_by_the_task(store: Store) -> None:
    spans = SpanStore(store, interval=0.02)
    await spans.start()
    try:
        worker = threading.Thread(
            target=lambda: spans.submit([span(1, 1), span(1, 2, parent=1)], [event(1, NOW)])
        )
        worker.start()
        worker.join()
        for _ in range(500):
            if spans.written == 3:
                break
            await asyncio.sleep(0.01)
        assert (spans.written, spans.pending, await counts(store)) == (3, 0, (2, 1))
    finally:
        await spans.stop()


async def test_a_full_batch_wakes_the_writer_before_its_interval(store: Store) -> None:
    spans = SpanStore(store, interval=60, batch=10)
    await spans.start()
    try:
        await asyncio.sleep(0.05)  # the task is now waiting out its 60 s interval
        threading.Thread(target=lambda: spans.submit([span(1, i) for i in range(1, 11)])).start()
        for _ in range(500):
            if spans.written == 10:
                break
            await asyncio.sleep(0.01)
        assert spans.written == 10
    finally:
        await spans.stop()


async def test_writes_are_idempotent_on_trace_and_span_ids(store: Store) -> None:
    spans = SpanStore(store)
    first = span(1, 1, **{"gen_ai.usage.input_tokens": 5})
    await spans.write([first, first], [event(1, NOW), event(1, NOW)])
    await spans.write([span(1, 1, **{"gen_ai.usage.input_tokens": 99})], [event(1, NOW)])

    assert await counts(store) == (1, 1)
    view = await spans.get_trace(f"{1:032x}")
    assert view is not None and view.roots[0].span.input_tokens == 5


async def test_the_queue_is_bounded_and_counts_drops(store: Store) -> None:
    spans = SpanStore(store, max_pending=3)

    assert spans.submit([span(1, 1), span(1, 2)]) is True
    assert spans.submit([span(1, 3), span(1, 4)], [event(1, NOW)]) is False  # one fits, two are dropped
    assert (spans.pending, spans.dropped) == (3, 2)
    assert spans.submit([span(2, 1)], whole=True) is False  # all or nothing: nothing queued, nothing dropped
    assert (spans.pending, spans.dropped) == (3, 2)

    assert await spans.flush() == 3
    assert await counts(store) == (3, 0)


async def test_stop_flushes_what_is_queued(store: Store) -> None:
    spans = SpanStore(store, interval=60)
    await spans.start()
    spans.submit([span(1, 1)], [event(1, NOW)])

    await spans.stop()

    assert await counts(store) == (1, 1)


async def test_retention_deletes_exactly_what_is_older_than_the_period(store: Store) -> None:
    spans = SpanStore(store, retention=7 * DAY, clock=lambda: NOW)
    cutoff = NOW - 7 * DAY
    await spans.write(
        [
            span(1, 1, start=cutoff - 3 * DAY),
            span(2, 1, start=cutoff - 0.001),
            span(3, 1, start=cutoff),
            span(4, 1, start=cutoff + 1),
            span(5, 1, start=NOW),
        ],
        [event(1, cutoff - 1), event(3, cutoff), event(5, NOW)],
    )

    assert await spans.apply_retention() == 3

    remaining = await spans.list_traces(limit=10)
    assert sorted(t.trace_id for t in remaining) == [f"{n:032x}" for n in (3, 4, 5)]
    assert await counts(store) == (3, 2)
    assert spans.deleted == 3


async def test_retention_off_keeps_everything(store: Store) -> None:
    spans = SpanStore(store, retention=None, clock=lambda: NOW)
    await spans.write([span(1, 1, start=0.0)], [])

    assert await spans.apply_retention() == 0
    assert await counts(store) == (1, 0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7d", 7 * DAY),
        ("36h", 36 * 3600.0),
        ("90m", 5400.0),
        ("2w", 14 * DAY),
        ("3600", 3600.0),
        (None, 7 * DAY),
    ],
)
def test_retention_periods(text: str | None, seconds: float) -> None:
    assert parse_retention(text) == seconds


@pytest.mark.parametrize("text", ["0", "off", "forever"])
def test_retention_can_be_turned_off(text: str) -> None:
    assert parse_retention(text) is None


def test_a_bad_retention_says_what_is_expected() -> None:
    with pytest.raises(
        ValueError, match=r"'a week' is not a retention period; expected e.g. 7d, 36h, 90m, or off"
    ):
        parse_retention("a week")


def test_costs_and_counts_are_read_from_numbers_or_numeric_strings() -> None:
    record = span(
        1,
        1,
        **{
            "gen_ai.usage.input_tokens": "12",
            "gen_ai.usage.output_tokens": 3.0,
            "fleetplane.cost.usd": "0.1",
        },
    )
    assert (record.input_tokens, record.output_tokens, record.cost_usd) == (12, 3, Decimal("0.1"))
    odd = span(
        1,
        2,
        **{"gen_ai.usage.input_tokens": -1, "gen_ai.usage.output_tokens": "x", "fleetplane.cost.usd": "nan"},
    )
    assert (odd.input_tokens, odd.output_tokens, odd.cost_usd) == (None, None, None)
