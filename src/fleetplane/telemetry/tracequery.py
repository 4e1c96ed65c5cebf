"""Traces read back: a list with one row per trace, and one trace as a tree of spans with their events.

Tokens and cost roll up as `spanquery` explains: a span's roll-up is the sum of its children's when any
descendant reports usage, else its own. Spans whose parent is not stored (not exported yet, or lost)
are roots of their own, marked `orphan`, so a partial trace still shows everything it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, exists, func, literal, select

from fleetplane.telemetry.records import EventRecord, SpanRecord
from fleetplane.telemetry.spanquery import (
    NS,
    QueryError,
    as_decimal,
    check_status,
    counted_spans,
    event_from_row,
    events,
    group_events,
    span_conditions,
    span_from_row,
    spans,
    time_window,
    traces_with,
)

if TYPE_CHECKING:
    from fleetplane.store.db import Store


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    root_name: str
    service_name: str | None
    start: float  # UNIX seconds of the earliest span
    duration_ms: float  # earliest start to latest end
    span_count: int
    error_count: int  # spans whose status is error
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal

    @property
    def error(self) -> bool:
        return self.error_count > 0


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    reported: bool = False  # whether anything in the subtree reports usage

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.reported = self.reported or other.reported


@dataclass
class SpanNode:
    span: SpanRecord
    children: list[SpanNode] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)  # log-based events naming this span
    orphan: bool = False  # its parent is not in the store
    rolled: Usage = field(default_factory=Usage)


@dataclass
class TraceView:
    trace_id: str
    roots: list[SpanNode]
    events: list[EventRecord]  # events of the trace that name no stored span
    total: Usage

    def walk(self) -> list[SpanNode]:
        """Every node, depth first, children in start order."""
        out: list[SpanNode] = []
        stack = list(reversed(self.roots))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out


class TraceQueries:
    store: Store

    async def list_traces(
        self,
        *,
        agent: str | None = None,
        team: str | None = None,
        model: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        min_cost: Decimal | float | None = None,
        limit: int = 20,
    ) -> list[TraceSummary]:
        """Traces that started in [since, until) and hold a span matching agent/team/model (each given
        filter, on one span), newest first. `status`: `error` when any span failed, `ok` when none did;
        `min_cost`: the trace's rolled-up cost in USD is at least this."""
        check_status(status)
        if limit < 1:
            raise QueryError(f"limit must be at least 1, got {limit}")
        in_scope = traces_with(span_conditions(agent=agent, team=team, model=model, since=since, until=until))
        start = func.min(spans.c.start_ns)
        errors = func.sum(case((spans.c.status_code == "error", 1), else_=0))
        stats = (
            select(
                spans.c.trace_id,
                start.label("start_ns"),
                func.max(spans.c.end_ns).label("end_ns"),
                func.count().label("span_count"),
                errors.label("error_count"),
            )
            .where(in_scope)
            .group_by(spans.c.trace_id)
            .having(*time_window(start, since, until))
            .subquery("trace_stats")
        )
        status_filter = []
        if status == "error":
            status_filter.append(stats.c.error_count > 0)
        elif status == "ok":
            status_filter.append(stats.c.error_count == 0)
        order = (stats.c.start_ns.desc(), stats.c.trace_id)
        async with self.store.engine.connect() as conn:
            if min_cost is None:
                # Roll up only the page's traces: the walk over usage is the expensive part.
                page = select(stats).where(*status_filter).order_by(*order).limit(limit)
            else:
                # The cost filter needs every candidate's roll-up before the page can be cut.
                rolled = _usage_query(in_scope).subquery("trace_usage")
                page = (
                    select(stats)
                    .select_from(stats.outerjoin(rolled, rolled.c.trace_id == stats.c.trace_id))
                    .where(*status_filter, func.coalesce(rolled.c.cost_usd, 0) >= Decimal(str(min_cost)))
                    .order_by(*order)
                    .limit(limit)
                )
            rows = (await conn.execute(page)).all()
            ids = [r.trace_id for r in rows]
            usage = {} if not ids else await self._usage(conn, spans.c.trace_id.in_(ids))
            roots = await self._roots(conn, ids)
        return [_summary(r, roots.get(r.trace_id), usage.get(r.trace_id)) for r in rows]

    @staticmethod
    async def _usage(conn: Any, scope: Any) -> dict[str, Any]:
        rows = (await conn.execute(_usage_query(scope))).all()
        return {r.trace_id: r for r in rows}

    @staticmethod
    async def _roots(conn: Any, trace_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        """Each trace's root span name and service: the earliest span without a stored parent."""
        if not trace_ids:
            return {}
        parent = spans.alias("parent_span")
        has_parent = exists(
            select(literal(1)).where(
                parent.c.trace_id == spans.c.trace_id, parent.c.span_id == spans.c.parent_span_id
            )
        )
        query = (
            select(spans.c.trace_id, spans.c.name, spans.c.service_name)
            .where(spans.c.trace_id.in_(trace_ids), ~has_parent)
            .order_by(spans.c.start_ns.desc())  # the earliest comes last and wins below
        )
        rows = (await conn.execute(query)).all()
        return {r.trace_id: (r.name, r.service_name) for r in rows}

    async def get_trace(self, trace_id: str) -> TraceView | None:
        """Every stored span of a trace as a tree, with its events; None when nothing is stored."""
        trace_id = trace_id.strip().lower()
        async with self.store.engine.connect() as conn:
            span_rows = (
                await conn.execute(
                    select(spans)
                    .where(spans.c.trace_id == trace_id)
                    .order_by(spans.c.start_ns, spans.c.span_id)
                )
            ).all()
            event_rows = (
                await conn.execute(
                    select(events)
                    .where(events.c.trace_id == trace_id)
                    .order_by(events.c.time_ns, events.c.event_id)
                )
            ).all()
        if not span_rows and not event_rows:
            return None
        return build_tree(
            trace_id, [span_from_row(r) for r in span_rows], [event_from_row(r) for r in event_rows]
        )


def _usage_query(scope: Any) -> Any:
    """Tokens and cost per trace, summed over the spans that count (see `spanquery`)."""
    return (
        select(
            spans.c.trace_id,
            func.sum(spans.c.input_tokens).label("input_tokens"),
            func.sum(spans.c.output_tokens).label("output_tokens"),
            func.sum(spans.c.cost_usd).label("cost_usd"),
        )
        .where(counted_spans(scope))
        .group_by(spans.c.trace_id)
    )


def _summary(row: Any, root: tuple[str, str | None] | None, usage: Any) -> TraceSummary:
    name, service = root or ("", None)
    return TraceSummary(
        trace_id=row.trace_id,
        root_name=name,
        service_name=service,
        start=row.start_ns / NS,
        duration_ms=max(0, row.end_ns - row.start_ns) / 1e6,
        span_count=int(row.span_count),
        error_count=int(row.error_count or 0),
        input_tokens=int(usage.input_tokens or 0) if usage is not None else 0,
        output_tokens=int(usage.output_tokens or 0) if usage is not None else 0,
        cost_usd=(as_decimal(usage.cost_usd) or Decimal(0)) if usage is not None else Decimal(0),
    )


def build_tree(trace_id: str, records: list[SpanRecord], trace_events: list[EventRecord]) -> TraceView:
    """Spans (in start order) linked to their parents; roll-ups computed bottom up."""
    nodes = {r.span_id: SpanNode(r) for r in records}
    by_span = group_events(trace_events)
    loose = [e for e in trace_events if e.span_id not in nodes]
    roots: list[SpanNode] = []
    for node in nodes.values():
        node.events = by_span.get((trace_id, node.span.span_id), [])
        parent_id = node.span.parent_span_id
        parent = nodes.get(parent_id) if parent_id and parent_id != node.span.span_id else None
        if parent is None:
            node.orphan = parent_id is not None
            roots.append(node)
        else:
            parent.children.append(node)
    _adopt_cycles(nodes, roots)
    total = Usage()
    for root in roots:
        rollup(root)
        total.add(root.rolled)
    return TraceView(trace_id=trace_id, roots=roots, events=loose, total=total)


def _adopt_cycles(nodes: dict[str, SpanNode], roots: list[SpanNode]) -> None:
    """Spans whose parents form a cycle are reached from no root: the earliest of each becomes one."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        seen.add(node.span.span_id)
        stack.extend(node.children)
    for node in nodes.values():
        if node.span.span_id in seen:
            continue
        # Cut the edge into this node, then mark its subtree reached.
        parent = nodes[node.span.parent_span_id or ""]
        parent.children.remove(node)
        node.orphan = True
        roots.append(node)
        stack = [node]
        while stack:
            current = stack.pop()
            seen.add(current.span.span_id)
            stack.extend(current.children)


def rollup(root: SpanNode) -> None:
    """Bottom up, without recursion (a trace may nest deeper than Python's stack)."""
    order: list[SpanNode] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):
        below = Usage()
        for child in node.children:
            if child.rolled.reported:
                below.add(child.rolled)
        if below.reported:
            node.rolled = below
        elif _reports(node.span):
            node.rolled = Usage(
                node.span.input_tokens or 0,
                node.span.output_tokens or 0,
                node.span.cost_usd or Decimal(0),
                True,
            )


def _reports(span: SpanRecord) -> bool:
    return span.input_tokens is not None or span.output_tokens is not None or span.cost_usd is not None
