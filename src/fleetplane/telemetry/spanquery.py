"""What the span store's queries share: span filters, rows read back as records, and which spans count.

Which spans count towards tokens and cost: a span may report usage (input or output tokens, or cost)
that its descendants also report — an agent span summing its model calls, a client's `chat` span for a
call the gateway recorded again as its own span. Adding both would count the same tokens twice, so a
span's figures count only when none of its descendants report usage: the deepest reports win, and a
subtree's roll-up is the sum of those. `counted_spans` says this in SQL (a recursive walk from every
reporting span up through its ancestors); `tracequery.rollup` says it in Python for one trace's tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, literal, or_, select, true

from fleetplane.store.tables import telemetry_events, telemetry_spans
from fleetplane.telemetry.records import EventRecord, SpanRecord

spans = telemetry_spans
events = telemetry_events

STATUSES = ("ok", "error")
SAMPLE_BITS = 63  # sample keys fit a signed BIGINT on both databases
NS = 1_000_000_000
TEN_PLACES = Decimal("1e-10")


def sample_key(trace_id: str) -> int:
    """The first 63 bits of sha256 over the trace id's 32 lowercase hex digits."""
    digest = hashlib.sha256(trace_id.lower().encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SAMPLE_BITS)


def sample_fraction(trace_id: str) -> float:
    """Where a trace falls in [0, 1): it is in every sample whose rate is above this."""
    return sample_key(trace_id) / 2**SAMPLE_BITS


class QueryError(ValueError):
    """A query's arguments are out of range (a bad status, rate, bucket or group)."""


def reports_usage() -> ColumnElement[bool]:
    return or_(
        spans.c.input_tokens.isnot(None), spans.c.output_tokens.isnot(None), spans.c.cost_usd.isnot(None)
    )


def span_conditions(
    *,
    agent: str | None = None,
    team: str | None = None,
    model: str | None = None,
    operation: str | None = None,
    provider: str | None = None,
    prompt_name: str | None = None,
    prompt_version: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> list[ColumnElement[bool]]:
    """Conditions on one span; `model` matches the requested or the answering model."""
    conditions: list[ColumnElement[bool]] = []
    for column, value in (
        (spans.c.agent, agent),
        (spans.c.team, team),
        (spans.c.operation, operation),
        (spans.c.provider, provider),
        (spans.c.prompt_name, prompt_name),
        (spans.c.prompt_version, prompt_version),
    ):
        if value is not None:
            conditions.append(column == value)
    if model is not None:
        conditions.append(or_(spans.c.request_model == model, spans.c.response_model == model))
    conditions.extend(time_window(spans.c.start_ns, since, until))
    return conditions


def traces_with(conditions: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    """Spans of the traces holding a span that meets every condition (every span when there are none:
    a semi-join of the table with itself is no filter, only work)."""
    if not conditions:
        return true()
    return spans.c.trace_id.in_(select(spans.c.trace_id).where(*conditions).scalar_subquery())


def time_window(column: Any, since: float | None, until: float | None) -> list[ColumnElement[bool]]:
    window: list[ColumnElement[bool]] = []
    if since is not None:
        window.append(column >= int(since * NS))
    if until is not None:
        window.append(column < int(until * NS))
    return window


def check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise QueryError(f"status {status!r} is not one of: {', '.join(STATUSES)}")


def counted_spans(scope: ColumnElement[bool]) -> ColumnElement[bool]:
    """Spans within `scope` whose usage counts: they report usage and no descendant does.

    `scope` must hold whole traces (e.g. `trace_id IN (...)`) so every descendant is seen."""
    walk = (
        select(spans.c.trace_id, spans.c.parent_span_id.label("span_id"))
        .where(reports_usage(), spans.c.parent_span_id.isnot(None), scope)
        .cte("usage_ancestors", recursive=True)
    )
    parent = spans.alias("parent_span")
    reached = walk.alias("reached")
    # UNION (not UNION ALL): a span already reached is not walked again, so a cycle of parents ends.
    walk = walk.union(
        select(parent.c.trace_id, parent.c.parent_span_id).where(
            parent.c.trace_id == reached.c.trace_id,
            parent.c.span_id == reached.c.span_id,
            parent.c.parent_span_id.isnot(None),
        )
    )
    shadowed = exists(
        select(literal(1)).where(walk.c.trace_id == spans.c.trace_id, walk.c.span_id == spans.c.span_id)
    )
    return and_(reports_usage(), scope, ~shadowed)


def span_from_row(row: Any) -> SpanRecord:
    values = dict(row._mapping)
    values.pop("sample_key", None)
    values["cost_usd"] = as_decimal(values.get("cost_usd"))
    return SpanRecord(**values)


def event_from_row(row: Any) -> EventRecord:
    values = dict(row._mapping)
    values.pop("event_id", None)
    return EventRecord(**values)


def as_decimal(value: Any) -> Decimal | None:
    """A cost read back from either database, to the ten places the column keeps (SQLite sums floats)."""
    if value is None:
        return None
    return Decimal(str(value)).quantize(TEN_PLACES)


def chunks(items: Iterable[str], size: int) -> Iterable[list[str]]:
    """Ids in groups small enough for one IN (...) on either database."""
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def group_events(rows: Iterable[EventRecord]) -> Mapping[tuple[str | None, str | None], list[EventRecord]]:
    grouped: dict[tuple[str | None, str | None], list[EventRecord]] = {}
    for event in rows:
        grouped.setdefault((event.trace_id, event.span_id), []).append(event)
    return grouped
