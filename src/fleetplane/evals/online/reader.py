"""New GenAI spans from the span store, cheaply: the evaluator re-reads a window behind its cursor (spans
are stored after they end, so one that started earlier can appear later), and most of that window it has
seen already. So the window is read as keys first — trace id, span id, start, on the start-time index —
and only the spans not seen yet are read whole, with their content events, through telemetry's row
helpers (the same records `SpanStore.sample` returns)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from fleetplane.store.db import Store
from fleetplane.telemetry.records import EventRecord, SpanRecord
from fleetplane.telemetry.spanquery import chunks, event_from_row, events, group_events, span_from_row, spans
from fleetplane.telemetry.usagequery import SampledSpan


@dataclass(frozen=True)
class Page:
    keys: list[tuple[str, str, int]]  # every (trace_id, span_id, start_ns) read, in start order
    fresh: list[SampledSpan]  # the unseen ones, whole


async def read_page(store: Store, *, since_ns: int, limit: int, seen: Callable[[str, str], bool]) -> Page:
    """Up to `limit` GenAI spans that started at or after `since_ns`, oldest first."""
    key_query = (
        select(spans.c.trace_id, spans.c.span_id, spans.c.start_ns)
        .where(spans.c.start_ns >= since_ns, spans.c.operation.isnot(None))
        .order_by(spans.c.start_ns, spans.c.trace_id, spans.c.span_id)
        .limit(limit)
    )
    async with store.engine.connect() as conn:
        keys = [(r.trace_id, r.span_id, int(r.start_ns)) for r in (await conn.execute(key_query)).all()]
        wanted = {(t, s) for t, s, _ in keys if not seen(t, s)}
        records: list[SpanRecord] = []
        for ids in chunks(sorted({t for t, _ in wanted}), 500):
            # By trace (the primary key's first column), then exactly the unseen spans of those traces.
            rows = await conn.execute(
                select(spans).where(spans.c.trace_id.in_(ids), spans.c.operation.isnot(None))
            )
            records.extend(r for r in map(span_from_row, rows.all()) if (r.trace_id, r.span_id) in wanted)
        found: list[EventRecord] = []
        for ids in chunks(sorted({r.trace_id for r in records}), 500):
            rows = await conn.execute(
                select(events).where(events.c.trace_id.in_(ids)).order_by(events.c.time_ns, events.c.event_id)
            )
            found.extend(event_from_row(r) for r in rows.all())
    by_span = group_events(found)
    records.sort(key=lambda r: (r.start_ns, r.trace_id, r.span_id))
    return Page(keys, [SampledSpan(r, by_span.get((r.trace_id, r.span_id), [])) for r in records])
