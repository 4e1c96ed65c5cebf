"""Usage over time from spans, and reproducible samples of GenAI traffic (what the evals wing reads).

`usage` sums the spans whose usage counts (see `spanquery`) per time bucket and group. `sample` picks
traces by a hash of their id, not by chance: a trace is in the sample at rate r when the first 63 bits
of sha256(trace id) read as a fraction of 2**63 fall below r. The same call returns the same spans, and
the traces sampled at 5% are among those sampled at 10%, so a suite re-run on more traffic only adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from fleetplane.telemetry.records import EventRecord, SpanRecord
from fleetplane.telemetry.spanquery import (
    NS,
    SAMPLE_BITS,
    QueryError,
    as_decimal,
    check_status,
    chunks,
    counted_spans,
    event_from_row,
    events,
    group_events,
    sample_key,
    span_conditions,
    span_from_row,
    spans,
    traces_with,
)

if TYPE_CHECKING:
    from fleetplane.store.db import Store

BUCKETS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400}
# What usage may be grouped by, and the column each name reads.
GROUPS = {
    "organization": spans.c.organization,
    "team": spans.c.team,
    "user": spans.c.user,
    "customer": spans.c.customer,
    "key": spans.c.key,
    "agent": spans.c.agent,
    "model": spans.c.request_model,
    "response_model": spans.c.response_model,
    "provider": spans.c.provider,
    "operation": spans.c.operation,
    "prompt_name": spans.c.prompt_name,
    "prompt_version": spans.c.prompt_version,
    "service": spans.c.service_name,
}


@dataclass(frozen=True)
class UsageRow:
    bucket: float  # UNIX seconds at the start of the bucket (UTC-aligned)
    group: dict[str, str | None]
    spans: int  # spans whose usage counted
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


@dataclass
class SampledSpan:
    span: SpanRecord  # its span events (e.g. content captured on the span) are in span.events
    events: list[EventRecord] = field(default_factory=list)  # log-based events naming it (content events)


def sample_threshold(rate: float) -> int:
    """Sample keys below this are in a sample at `rate` (exact: no float rounding at the edge)."""
    if not 0 < rate <= 1:
        raise QueryError(f"rate must be above 0 and at most 1, got {rate}")
    return int(Fraction(rate) * 2**SAMPLE_BITS)


class UsageQueries:
    store: Store

    async def usage(
        self,
        *,
        group_by: Sequence[str] = ("team", "agent", "model"),
        since: float | None = None,
        until: float | None = None,
        bucket: str = "1h",
        agent: str | None = None,
        team: str | None = None,
        model: str | None = None,
    ) -> list[UsageRow]:
        """Tokens and cost from spans that started in [since, until), per `bucket` and group."""
        unknown = [g for g in group_by if g not in GROUPS]
        if unknown:
            raise QueryError(f"cannot group by {', '.join(unknown)}; choose from: {', '.join(GROUPS)}")
        if bucket not in BUCKETS:
            raise QueryError(f"bucket {bucket!r} is not one of: {', '.join(BUCKETS)}")
        width = BUCKETS[bucket] * NS
        window = span_conditions(agent=agent, team=team, model=model, since=since, until=until)
        # Whole traces are in scope, so a span's descendants are seen even past the window's end.
        in_scope = traces_with(window)
        start_bucket = ((spans.c.start_ns // width) * width).label("bucket")
        columns = [GROUPS[g].label(g) for g in group_by]
        query = (
            select(
                start_bucket,
                *columns,
                func.count().label("spans"),
                func.sum(spans.c.input_tokens).label("input_tokens"),
                func.sum(spans.c.output_tokens).label("output_tokens"),
                func.sum(spans.c.cost_usd).label("cost_usd"),
            )
            .where(counted_spans(in_scope), *window)
            .group_by(start_bucket, *[GROUPS[g] for g in group_by])
            .order_by(start_bucket, *[GROUPS[g] for g in group_by])
        )
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            UsageRow(
                bucket=int(r.bucket) / NS,
                group={g: getattr(r, g) for g in group_by},
                spans=int(r.spans),
                input_tokens=int(r.input_tokens or 0),
                output_tokens=int(r.output_tokens or 0),
                cost_usd=as_decimal(r.cost_usd) or Decimal(0),
            )
            for r in rows
        ]

    async def sample(
        self,
        *,
        rate: float,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        agent: str | None = None,
        team: str | None = None,
        model: str | None = None,
        operation: str | None = None,
        prompt_name: str | None = None,
        prompt_version: str | None = None,
        status: str | None = None,
        with_events: bool = True,
    ) -> list[SampledSpan]:
        """GenAI spans (those naming a `gen_ai.operation.name`) of the traces sampled at `rate`, that
        started in [since, until) and match every filter given, oldest first; with their content events."""
        check_status(status)
        if limit < 1:
            raise QueryError(f"limit must be at least 1, got {limit}")
        threshold = sample_threshold(rate)
        conditions: list[Any] = [
            # At rate 1 the threshold is 2**63, past a BIGINT: every key is below it anyway.
            spans.c.sample_key < threshold if threshold < 2**SAMPLE_BITS else spans.c.sample_key >= 0,
            spans.c.operation.isnot(None),
            *span_conditions(
                agent=agent,
                team=team,
                model=model,
                operation=operation,
                prompt_name=prompt_name,
                prompt_version=prompt_version,
                since=since,
                until=until,
            ),
        ]
        if status is not None:
            conditions.append(spans.c.status_code == status)
        query = select(spans).where(*conditions).order_by(spans.c.start_ns, spans.c.trace_id, spans.c.span_id)
        async with self.store.engine.connect() as conn:
            records = [span_from_row(r) for r in (await conn.execute(query.limit(limit))).all()]
            found: list[EventRecord] = []
            if with_events and records:
                for ids in chunks(sorted({r.trace_id for r in records}), 500):
                    rows = await conn.execute(
                        select(events)
                        .where(events.c.trace_id.in_(ids))
                        .order_by(events.c.time_ns, events.c.event_id)
                    )
                    found.extend(event_from_row(r) for r in rows.all())
        by_span = group_events(found)
        return [SampledSpan(r, by_span.get((r.trace_id, r.span_id), [])) for r in records]


def sampled(trace_id: str, rate: float) -> bool:
    """Whether `sample` at `rate` includes this trace (the same test, in Python)."""
    return sample_key(trace_id) < sample_threshold(rate)


def as_json(row: UsageRow) -> dict[str, Any]:
    return {
        "bucket": row.bucket,
        **row.group,
        "spans": row.spans,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cost_usd": str(row.cost_usd),
    }
