"""The span store's queries on SQLite and Postgres: traces as trees with the right parents and exact
roll-ups (the deepest spans reporting usage count, never a parent's total as well), list_traces filters,
usage over time, and a sample that is reproducible and nested across rates."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from fleetplane.store.db import Store
from fleetplane.telemetry.records import EventRecord, SpanRecord, event_record, span_record
from fleetplane.telemetry.spanquery import QueryError, sample_fraction
from fleetplane.telemetry.spanstore import SpanStore
from fleetplane.telemetry.usagequery import sampled

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0  # on an hour boundary
HOUR = 3600.0
T1, T2, T3, T4 = (f"{n:032x}" for n in (1, 2, 3, 4))


def span(
    trace: str,
    span_id: int,
    start: float,
    *,
    parent: int | None = None,
    name: str = "span",
    status: str = "unset",
    **attrs: Any,
) -> SpanRecord:
    return span_record(
        trace_id=trace,
        span_id=f"{span_id:016x}",
        parent_span_id=f"{parent:016x}" if parent else None,
        name=name,
        kind="internal",
        start_ns=int(start * 1e9),
        end_ns=int(start * 1e9) + 2_000_000,
        status_code=status,
        status_message=None,
        attributes={k.replace("__", "."): v for k, v in attrs.items()},
        events=[],
        links=[],
        resource={"service.name": "agents"},
        scope_name=None,
        scope_version=None,
    )


def usage(model: str, tokens_in: int, tokens_out: int, cost: str, **more: Any) -> dict[str, Any]:
    return {
        "gen_ai__operation__name": "chat",
        "gen_ai__request__model": model,
        "gen_ai__usage__input_tokens": tokens_in,
        "gen_ai__usage__output_tokens": tokens_out,
        "fleetplane__cost__usd": cost,
        **more,
    }


SUPPORT = {"gen_ai__agent__name": "triage", "fleetplane__team": "support"}
FINANCE = {"gen_ai__agent__name": "billing", "fleetplane__team": "finance"}


def fleet() -> list[SpanRecord]:
    t1 = NOW - HOUR
    return [
        # T1: an agent span reporting its own (overlapping) total, a tool, two model calls, one failing.
        span(T1, 1, t1, name="invoke_agent triage", **SUPPORT, **usage("gpt-4o", 999, 99, "9")),
        span(T1, 2, t1 + 1, parent=1, name="execute_tool lookup", **SUPPORT),
        span(T1, 3, t1 + 2, parent=2, name="chat gpt-4o", **SUPPORT, **usage("gpt-4o", 100, 10, "0.0000012")),
        span(
            T1,
            4,
            t1 + 3,
            parent=1,
            name="chat gpt-4o",
            status="error",
            **SUPPORT,
            **usage("gpt-4o", 200, 20, "0.0000034"),
        ),
        # T2: one model call answered by a model under another name.
        span(
            T2,
            1,
            NOW - 600,
            name="chat claude",
            status="ok",
            **FINANCE,
            **usage("claude", 50, 5, "0.01", gen_ai__response__model="claude-3-5"),
        ),
        # T3: a span whose parent was never stored, two days ago.
        span(
            T3, 7, NOW - 2 * 86400, parent=6, name="chat gpt-4o", **SUPPORT, **usage("gpt-4o", 1, 2, "0.02")
        ),
        # T4: two spans naming each other as parent, no usage.
        span(T4, 1, NOW - 100, parent=2, name="loop a"),
        span(T4, 2, NOW - 99, parent=1, name="loop b"),
    ]


@pytest.fixture
async def spans(database_url: str) -> AsyncIterator[SpanStore]:
    store = await Store.open(database_url)
    span_store = SpanStore(store)
    await span_store.write(fleet(), [])
    yield span_store
    await store.close()


async def test_a_trace_is_a_tree_with_exact_rollups(spans: SpanStore) -> None:
    view = await spans.get_trace(T1.upper())

    assert view is not None
    (root,) = view.roots
    assert [(n.span.name, [c.span.name for c in n.children]) for n in view.walk()] == [
        ("invoke_agent triage", ["execute_tool lookup", "chat gpt-4o"]),
        ("execute_tool lookup", ["chat gpt-4o"]),
        ("chat gpt-4o", []),
        ("chat gpt-4o", []),
    ]
    rolled = {
        n.span.span_id[-1]: (n.rolled.input_tokens, n.rolled.output_tokens, n.rolled.cost_usd)
        for n in view.walk()
    }
    assert rolled == {
        "1": (300, 30, Decimal("0.0000046")),  # its own 999 tokens and $9 are its children's total, not more
        "2": (100, 10, Decimal("0.0000012")),
        "3": (100, 10, Decimal("0.0000012")),
        "4": (200, 20, Decimal("0.0000034")),
    }
    assert (view.total.input_tokens, view.total.output_tokens, view.total.cost_usd) == (
        300,
        30,
        Decimal("0.0000046"),
    )
    assert not root.orphan and view.events == []


async def test_partial_and_cyclic_traces_keep_every_span(spans: SpanStore) -> None:
    orphan = await spans.get_trace(T3)
    assert orphan is not None and [(n.span.name, n.orphan) for n in orphan.roots] == [("chat gpt-4o", True)]

    loop = await spans.get_trace(T4)
    assert loop is not None
    assert sorted(n.span.name for n in loop.walk()) == ["loop a", "loop b"]
    assert len(loop.roots) == 1 and loop.total.reported is False

    assert await spans.get_trace("f" * 32) is None


async def test_list_traces_rolls_up_like_the_tree(spans: SpanStore) -> None:
    listed = await spans.list_traces(limit=10)

    assert [t.trace_id for t in listed] == [T4, T2, T1, T3]  # newest first
    t1 = next(t for t in listed if t.trace_id == T1)
    assert (t1.root_name, t1.service_name, t1.span_count, t1.error_count, t1.error) == (
        "invoke_agent triage",
        "agents",
        4,
        1,
        True,
    )
    assert (t1.input_tokens, t1.output_tokens, t1.cost_usd) == (300, 30, Decimal("0.0000046"))
    assert (t1.start, t1.duration_ms) == (NOW - HOUR, 3002.0)
    for summary in listed:
        view = await spans.get_trace(summary.trace_id)
        assert view is not None
        assert (summary.input_tokens, summary.output_tokens, summary.cost_usd) == (
            view.total.input_tokens,
            view.total.output_tokens,
            view.total.cost_usd,
        )
    t4 = next(t for t in listed if t.trace_id == T4)
    assert (t4.root_name, t4.cost_usd) == ("", Decimal(0))  # a cycle has no span without a parent


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"agent": "triage"}, [T1, T3]),
        ({"team": "finance"}, [T2]),
        ({"model": "claude-3-5"}, [T2]),  # the answering model matches too
        ({"model": "gpt-4o"}, [T1, T3]),
        ({"model": "gpt-4o", "agent": "billing"}, []),
        ({"status": "error"}, [T1]),
        ({"status": "ok"}, [T4, T2, T3]),
        ({"since": NOW - 86400}, [T4, T2, T1]),
        ({"until": NOW - 1000}, [T1, T3]),
        ({"since": NOW - HOUR, "until": NOW - HOUR + 0.5}, [T1]),
        ({"since": NOW - HOUR + 2}, [T4, T2]),  # T1 has later spans, but it started before
        ({"min_cost": 0.01}, [T2, T3]),
        ({"min_cost": Decimal("0.0000046")}, [T2, T1, T3]),
        ({"limit": 1}, [T4]),
    ],
)
async def test_list_traces_filters(spans: SpanStore, filters: dict[str, Any], expected: list[str]) -> None:
    assert [t.trace_id for t in await spans.list_traces(**filters)] == expected


async def test_usage_by_team_and_model_per_hour(spans: SpanStore) -> None:
    rows = await spans.usage(group_by=["team", "model"], bucket="1h")

    assert [(r.bucket, r.group, r.spans, r.input_tokens, r.output_tokens, r.cost_usd) for r in rows] == [
        (NOW - 2 * 86400, {"team": "support", "model": "gpt-4o"}, 1, 1, 2, Decimal("0.02")),
        (NOW - HOUR, {"team": "finance", "model": "claude"}, 1, 50, 5, Decimal("0.01")),
        (NOW - HOUR, {"team": "support", "model": "gpt-4o"}, 2, 300, 30, Decimal("0.0000046")),
    ]


async def test_usage_in_a_window_per_day(spans: SpanStore) -> None:
    rows = await spans.usage(group_by=["agent"], since=NOW - 86400, bucket="1d")

    day = NOW - NOW % 86400  # 08:00 UTC: both traces of the window started that day
    assert [(r.bucket, r.group, r.input_tokens, r.cost_usd) for r in rows] == [
        (day - 86400 if day > NOW - HOUR else day, {"agent": "billing"}, 50, Decimal("0.01")),
        (day - 86400 if day > NOW - HOUR else day, {"agent": "triage"}, 300, Decimal("0.0000046")),
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"group_by": ["colour"]}, "cannot group by colour; choose from: organization, team, user"),
        ({"bucket": "2h"}, "bucket '2h' is not one of: 1m, 5m, 15m, 1h, 6h, 1d"),
    ],
)
async def test_usage_refuses_unknown_groups_and_buckets(
    spans: SpanStore, call: dict[str, Any], message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        await spans.usage(**call)


async def test_list_traces_refuses_an_unknown_status(spans: SpanStore) -> None:
    with pytest.raises(QueryError, match="status 'failed' is not one of: ok, error"):
        await spans.list_traces(status="failed")


def traffic(count: int) -> tuple[list[SpanRecord], list[EventRecord]]:
    records: list[SpanRecord] = []
    for n in range(count):
        trace = hashlib.sha256(f"trace {n}".encode()).hexdigest()[:32]
        start = NOW + n
        records.append(span(trace, 1, start, name="invoke_agent a", **SUPPORT))  # no operation: not sampled
        records[-1].operation = None
        records.append(
            span(trace, 2, start + 0.5, parent=1, name="chat gpt-4o", **usage("gpt-4o", 1, 1, "0"))
        )
    content = event_record(
        trace_id=records[1].trace_id,
        span_id=records[1].span_id,
        time_ns=records[1].start_ns,
        observed_ns=records[1].start_ns,
        event_name="gen_ai.client.inference.operation.details",
        severity_number=9,
        severity_text=None,
        body={"gen_ai.output.messages": [{"role": "assistant"}]},
        attributes={},
        resource={},
        scope_name=None,
    )
    return records, [content]


async def test_sample_is_reproducible_nested_and_by_trace_id_hash(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        span_store = SpanStore(store)
        records, content = traffic(400)
        await span_store.write(records, content)
        everyone = {r.trace_id for r in records}

        at_10 = await span_store.sample(rate=0.10, limit=1000)
        at_5 = await span_store.sample(rate=0.05, limit=1000)

        ids_10 = {s.span.trace_id for s in at_10}
        ids_5 = {s.span.trace_id for s in at_5}
        assert ids_5 <= ids_10
        assert (
            ids_10
            == {t for t in everyone if sample_fraction(t) < 0.10}
            == {t for t in everyone if sampled(t, 0.1)}
        )
        assert 20 <= len(ids_10) <= 70 and len(ids_5) < len(ids_10)
        assert all(s.span.operation == "chat" for s in at_10)
        assert [s.span for s in await span_store.sample(rate=0.10, limit=1000)] == [s.span for s in at_10]
        assert [s.span.start_ns for s in at_10] == sorted(s.span.start_ns for s in at_10)
        assert len(await span_store.sample(rate=1.0, limit=1000)) == 400
        assert len(await span_store.sample(rate=0.10, limit=3)) == 3
        later = await span_store.sample(rate=0.10, since=NOW + 200, limit=1000)
        assert {s.span.trace_id for s in later} == {
            s.span.trace_id for s in at_10 if s.span.start_ns >= (NOW + 200) * 1e9
        }

        first = await span_store.sample(rate=1.0, limit=1)
        assert [e.event_name for e in first[0].events] == ["gen_ai.client.inference.operation.details"]
        assert first[0].events == content
        assert await span_store.sample(rate=1.0, limit=5, model="claude") == []
    finally:
        await store.close()


@pytest.mark.parametrize("rate", [0, -0.1, 1.5])
async def test_sample_refuses_a_rate_outside_0_to_1(spans: SpanStore, rate: float) -> None:
    with pytest.raises(QueryError, match=f"rate must be above 0 and at most 1, got {rate}"):
        await spans.sample(rate=rate)
