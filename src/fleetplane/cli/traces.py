"""`fleetplane traces`: traces from the span store, read straight from the database.

`list` shows one row per trace (newest first) with its roll-up of tokens and cost; `show` draws one
trace as a tree: each span with its duration, tokens and cost rolled up to the root, its events under
it, failures in red. Both print JSON with `-o json`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from fleetplane.cli.common import FAILED, DatabaseURL, console, fail, now, with_store
from fleetplane.manifests.fields import parse_duration
from fleetplane.store.db import Store
from fleetplane.telemetry.records import EventRecord
from fleetplane.telemetry.spanstore import SpanStore
from fleetplane.telemetry.tracequery import SpanNode, TraceSummary, TraceView, Usage

traces_app = typer.Typer(
    name="traces", help="Traces from the span store: list them, show one as a tree.", no_args_is_help=True
)

TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
Output = Annotated[str, typer.Option("--output", "-o", help="table (list), tree (show) or json.")]


def register(app: typer.Typer) -> None:
    app.add_typer(traces_app, name="traces")


@traces_app.command("list")
def list_traces(
    agent: Annotated[str | None, typer.Option(help="Only traces with a span of this agent.")] = None,
    team: Annotated[str | None, typer.Option(help="Only traces with a span of this team.")] = None,
    model: Annotated[str | None, typer.Option(help="Only traces that called this model.")] = None,
    status: Annotated[str | None, typer.Option(help="ok (no span failed) or error (one did).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only traces started in the last DURATION: 15m, 1h, 7d.")
    ] = None,
    min_cost: Annotated[
        str | None, typer.Option("--min-cost", help="Only traces that cost at least this many USD.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many traces.")] = 20,
    output: Output = "table",
    database_url: DatabaseURL = None,
) -> None:
    """Traces, newest first, with their root span, duration, tokens and cost."""
    if status is not None and status not in ("ok", "error"):
        fail(f"--status {status!r}: expected ok or error")
    if limit < 1:
        fail(f"--limit {limit}: expected 1 or more")
    _check_output(output, "table")
    start = now() - _duration("--since", since) if since is not None else None
    cost = _cost(min_cost) if min_cost is not None else None

    async def read(store: Store) -> list[TraceSummary]:
        return await SpanStore(store).list_traces(
            agent=agent, team=team, model=model, status=status, since=start, min_cost=cost, limit=limit
        )

    traces = with_store(database_url, read)
    if output == "json":
        console.print_json(json.dumps([_summary_json(t) for t in traces]))
        return
    if not traces:
        console.print("no traces match")
        return
    table = Table(
        "trace", "root span", "start (UTC)", "duration", "spans", "tokens in", "tokens out", "cost (USD)"
    )
    for t in traces:
        style = "red" if t.error else None
        table.add_row(
            t.trace_id,
            escape(t.root_name or "-"),
            _time(t.start),
            _ms(t.duration_ms),
            f"{t.span_count}" + (f" ({t.error_count} failed)" if t.error else ""),
            f"{t.input_tokens:,}",
            f"{t.output_tokens:,}",
            f"{t.cost_usd:.6f}",
            style=style,
        )
    console.print(table)


@traces_app.command("show")
def show(
    trace_id: Annotated[str, typer.Argument(help="The trace id: 32 hex digits.")],
    output: Output = "tree",
    database_url: DatabaseURL = None,
) -> None:
    """One trace as a tree: spans with duration, tokens and cost rolled up to the root; events under them."""
    if not TRACE_ID.fullmatch(trace_id.strip()):
        fail(f"{trace_id!r} is not a trace id: expected 32 hex digits")
    _check_output(output, "tree")

    async def read(store: Store) -> TraceView | None:
        return await SpanStore(store).get_trace(trace_id.strip().lower())

    view = with_store(database_url, read)
    if view is None:
        fail(f"no trace {trace_id.strip().lower()} is stored", code=FAILED)
    if output == "json":
        console.print_json(json.dumps(_view_json(view)))
        return
    console.print(_tree(view))


def _check_output(output: str, default: str) -> None:
    if output not in (default, "json"):
        fail(f"unknown output {output!r}; expected {default} or json")


def _duration(flag: str, text: str) -> float:
    try:
        seconds = float(parse_duration(text))
    except ValueError:
        fail(f"{flag} {text!r}: not a duration; expected e.g. 15m, 1h, 7d or a number of seconds")
    if seconds <= 0:
        fail(f"{flag} {text!r}: expected a duration greater than 0")
    return seconds


def _cost(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        fail(f"--min-cost {text!r}: not a number of US dollars")
    if not value.is_finite() or value < 0:
        fail(f"--min-cost {text!r}: expected 0 or more US dollars")
    return value


def _tree(view: TraceView) -> Tree:
    tree = Tree(f"[bold]trace {view.trace_id}[/]  {_usage(view.total)}")
    stack: list[tuple[Tree, SpanNode]] = [(tree, node) for node in reversed(view.roots)]
    while stack:
        branch, node = stack.pop()
        child = branch.add(_span_label(node))
        for event in node.events:
            child.add(_event_label(event))
        for span_event in node.span.events:
            child.add(f"[dim]· {escape(str(span_event.get('name', '')))} (span event)[/]")
        stack.extend((child, c) for c in reversed(node.children))
    for event in view.events:
        tree.add(_event_label(event))
    return tree


def _span_label(node: SpanNode) -> str:
    span = node.span
    failed = span.is_error or span.error_type is not None
    facts = [f for f in (span.agent and f"agent {span.agent}", span.request_model) if f]
    name = escape(span.name or "(unnamed)")
    label = f"[red]{name}[/]" if failed else f"[bold]{name}[/]"
    parts = [label, _ms(span.duration_ns / 1e6)]
    if node.rolled.reported:
        parts.append(_usage(node.rolled))
    if facts:
        parts.append(f"[dim]{escape(' · '.join(str(f) for f in facts))}[/]")
    if failed:
        why = span.error_type or "error"
        parts.append(
            f"[red]✗ {escape(why)}{': ' + escape(span.status_message) if span.status_message else ''}[/]"
        )
    if node.orphan:
        parts.append(f"[yellow](parent {span.parent_span_id} not stored)[/]")
    return "  ".join(parts)


def _event_label(event: EventRecord) -> str:
    body = json.dumps(event.body, ensure_ascii=False) if event.body is not None else ""
    preview = body if len(body) <= 80 else body[:77] + "..."
    return f"[cyan]• {escape(event.event_name or '(event)')}[/] {escape(preview)}"


def _usage(usage: Usage) -> str:
    return f"{usage.input_tokens:,} in / {usage.output_tokens:,} out  ${usage.cost_usd:.6f}"


def _ms(milliseconds: float) -> str:
    return f"{milliseconds / 1000:.2f} s" if milliseconds >= 1000 else f"{milliseconds:.1f} ms"


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _summary_json(summary: TraceSummary) -> dict[str, Any]:
    values = asdict(summary)
    values["cost_usd"] = str(summary.cost_usd)
    values["error"] = summary.error
    return values


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": str(usage.cost_usd),
    }


def _node_json(node: SpanNode) -> dict[str, Any]:
    span = asdict(node.span)
    span["cost_usd"] = None if node.span.cost_usd is None else str(node.span.cost_usd)
    return {
        **span,
        "duration_ms": node.span.duration_ns / 1e6,
        "orphan": node.orphan,
        "rolled_up": _usage_json(node.rolled),
        "log_events": [asdict(e) for e in node.events],
        "children": [_node_json(c) for c in node.children],
    }


def _view_json(view: TraceView) -> dict[str, Any]:
    return {
        "trace_id": view.trace_id,
        "total": _usage_json(view.total),
        "spans": [_node_json(root) for root in view.roots],
        "events": [asdict(e) for e in view.events],
    }
