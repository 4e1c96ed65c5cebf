"""The cheap paths kept for the gateway's sake record exactly what the plain ones did: metric attribute
sets built once per kind of call never leak one call's error, model or tenant into another's series, and
the span store writes a large queue in bounded slices, yielding to the loop between them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from fleetplane.store.db import Store
from fleetplane.telemetry import content
from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.content import scrub_secrets
from fleetplane.telemetry.cost import TokenUsage
from fleetplane.telemetry.metric_records import CallRecord
from fleetplane.telemetry.metrics import GenAIMetrics
from fleetplane.telemetry.records import EventRecord, SpanRecord, span_record
from fleetplane.telemetry.spanstore import SpanStore, span_row


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = (point.count, point.sum)
                    found.setdefault(metric.name, []).append((dict(point.attributes), value))
    return found


def test_bound_attribute_sets_keep_every_series_apart() -> None:
    reader = InMemoryMetricReader()
    metrics = GenAIMetrics(MeterProvider(metric_readers=[reader]).get_meter("t"), sc.CURRENT)
    usage = TokenUsage(input_tokens=10, output_tokens=4)
    team_a = {sc.FP_TEAM: "a", sc.FP_ORGANIZATION: "o"}
    for error, team in ((None, team_a), ("timeout", team_a), (None, team_a), (None, {sc.FP_TEAM: "b"})):
        metrics.record_call(
            CallRecord(
                operation="chat", provider="openai", duration_s=0.5, request_model="m",
                response_model="m-1", usage=usage, error_type=error, cost_usd=0.25, tenant=team,
            )
        )  # fmt: skip
    points = _points(reader)
    base = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: "m",
        sc.GEN_AI_RESPONSE_MODEL: "m-1",
    }
    durations = sorted(points["gen_ai.client.operation.duration"], key=lambda p: len(p[0]))
    assert durations == [(base, (3, 1.5)), ({**base, sc.ERROR_TYPE: "timeout"}, (1, 0.5))]
    tokens = sorted(points["gen_ai.client.token.usage"], key=lambda p: p[0][sc.GEN_AI_TOKEN_TYPE])
    assert tokens == [
        ({**base, sc.GEN_AI_TOKEN_TYPE: "input"}, (4, 40)),
        ({**base, sc.GEN_AI_TOKEN_TYPE: "output"}, (4, 16)),
    ]
    owner = {sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "m"}
    cost = sorted(points[sc.FP_COST_METRIC.name], key=lambda p: p[0][sc.FP_TEAM])
    assert cost == [
        ({**owner, sc.FP_TEAM: "a", sc.FP_ORGANIZATION: "o"}, 0.75),
        ({**owner, sc.FP_TEAM: "b"}, 0.25),
    ]


def test_a_span_row_is_every_field_of_the_record_plus_its_sample_key() -> None:
    record = span_record(
        trace_id="ab" * 16, span_id="cd" * 8, parent_span_id=None, name="chat m", kind="client",
        start_ns=1, end_ns=2, status_code="unset", status_message=None,
        attributes={"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3}, events=[], links=[],
        resource={}, scope_name=None, scope_version=None,
    )  # fmt: skip
    row = span_row(record)
    assert set(row) == set(record.__dict__) | {"sample_key"}
    assert (row["request_model"], row["input_tokens"], row["attributes"]) == (
        "m",
        3,
        {"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3},
    )


def _span(i: int) -> SpanRecord:
    return span_record(
        trace_id=f"{1:032x}", span_id=f"{i:016x}", parent_span_id=None, name="s", kind="internal",
        start_ns=i, end_ns=i + 1, status_code="unset", status_message=None, attributes={}, events=[],
        links=[], resource={}, scope_name=None, scope_version=None,
    )  # fmt: skip


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url)
    yield store
    await store.close()


@pytest.mark.anyio
async def test_the_writer_writes_in_slices_and_lets_the_loop_run_between_them(store: Store) -> None:
    spans = SpanStore(store, interval=60, batch=1000, slice_rows=2)
    slices: list[int] = []
    ticks: list[int] = []
    write = spans.write

    async def recording(rows: Sequence[SpanRecord], events: Sequence[EventRecord]) -> None:
        slices.append(len(rows) + len(events))
        await write(rows, events)

    spans.write = recording  # type: ignore[method-assign]
    records = [_span(i) for i in range(1, 6)]
    assert spans.submit(records)

    async def ticker() -> None:
        while True:
            ticks.append(len(slices))
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        assert await spans.flush() == 5
    finally:
        task.cancel()
    assert slices == [2, 2, 1]
    # The loop ran other work after the first slice and after the second, before the flush ended.
    assert {1, 2} <= set(ticks)


def test_the_secret_scrubber_remembers_clean_strings_only() -> None:
    secret = "Bearer sk-" + "a1" * 20
    assert scrub_secrets(secret) == scrub_secrets(secret) == "Bearer [REDACTED]"
    assert secret not in content._KNOWN_CLEAN
    assert scrub_secrets("gpt-4o-mini") == "gpt-4o-mini"
    assert "gpt-4o-mini" in content._KNOWN_CLEAN
    long_clean = "x" * (content._KNOWN_CLEAN_LEN + 1)
    assert scrub_secrets(long_clean) == long_clean
    assert long_clean not in content._KNOWN_CLEAN
