"""Names and bucket boundaries: the v1.41.0 set by default, the newest under the stability opt-in."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry import span_names
from fleetplane.telemetry.cost import TokenUsage
from fleetplane.telemetry.setup import InMemorySink, Telemetry

LATEST_ENV = {sc.OPT_IN_ENV: "http, gen_ai_latest_experimental"}

# Copied by hand from the conventions (gen-ai-metrics.md, mcp metrics), not from the module under test.
CONVENTION_BUCKETS = {
    "gen_ai.client.token.usage": [
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
    ],
    "gen_ai.client.operation.duration": [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ],
    "gen_ai.client.operation.time_to_first_chunk": [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ],
    "gen_ai.client.operation.time_per_output_chunk": [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ],
    "gen_ai.server.request.duration": [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ],
    "gen_ai.server.time_to_first_token": [
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ],
    "gen_ai.server.time_per_output_token": [
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    ],
    "mcp.client.operation.duration": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    "mcp.server.operation.duration": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
}  # fmt: skip


def _exercise(environ: dict[str, str]) -> dict[str, list[Any]]:
    """Every kind of operation once; returns the data points of each metric name emitted."""
    reader = InMemoryMetricReader()
    sink = InMemorySink()
    telemetry = Telemetry.create(
        "semconv-test", span_sinks=[sink], metric_readers=[reader], otlp=False, environ=environ
    )
    spans, metrics = telemetry.spans, telemetry.metrics
    with spans.invoke_workflow_span("wf"), spans.invoke_agent_span("a", agent_id="agt-1", provider="openai"):
        with spans.chat_span(provider="openai", model="gpt-4o", stream=True) as chat:
            chat.record_chunk()
            chat.record_chunk()
            chat.set_usage(
                TokenUsage(input_tokens=10, output_tokens=5, cache_write_tokens=4, reasoning_tokens=2)
            )
        with spans.embeddings_span(provider="openai", model="e3") as emb:
            emb.set_usage(TokenUsage(input_tokens=7))
        with spans.execute_tool_span("t"):
            pass
        with spans.retrieval_span("kb", top_k=3):
            pass
    with spans.mcp_span("tools/call", "t"):
        pass
    with spans.mcp_span("tools/call", "t", server=True):
        pass
    metrics.record_server(
        operation="chat", provider="openai", request_duration_s=1, time_to_first_token_s=0.1,
        time_per_output_token_s=0.01,
    )  # fmt: skip
    telemetry.force_flush()
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    found["__spans__"] = list(sink.spans)
    telemetry.shutdown()
    return found


def test_otel_opt_in_is_read_from_the_comma_separated_list() -> None:
    assert sc.select({}) is sc.CURRENT
    assert sc.select({sc.OPT_IN_ENV: "http"}) is sc.CURRENT
    assert sc.select(LATEST_ENV) is sc.LATEST
    assert sc.select({sc.OPT_IN_ENV: "gen_ai_latest_experimental"}) is sc.LATEST


def test_otel_default_histograms_have_the_conventions_bucket_boundaries() -> None:
    found = _exercise({})
    for name, buckets in CONVENTION_BUCKETS.items():
        assert name in found, name
        for point in found[name]:
            assert isinstance(point, HistogramDataPoint)
            assert list(point.explicit_bounds) == buckets, name


def test_otel_default_names() -> None:
    found = _exercise({})
    assert "gen_ai.client.token.usage" in found
    assert not [name for name in found if name.startswith("gen_ai.client.inference.")]
    assert "gen_ai.invoke_agent.duration" not in found
    durations = {p.attributes[sc.GEN_AI_OPERATION_NAME] for p in found["gen_ai.client.operation.duration"]}
    assert durations == {"chat", "embeddings"}
    by_name = {span.name: dict(span.attributes or {}) for span in found["__spans__"]}
    assert by_name["chat gpt-4o"]["gen_ai.usage.cache_creation.input_tokens"] == 4
    assert by_name["retrieval kb"]["gen_ai.request.top_k"] == 3
    assert by_name["invoke_agent a"][sc.GEN_AI_AGENT_ID] == "agt-1"
    assert by_name["invoke_agent a"][sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert not any("gen_ai.system" in attrs for attrs in by_name.values())


def test_otel_latest_experimental_switches_to_the_newest_names() -> None:
    found = _exercise(LATEST_ENV)
    renamed_away = {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.operation.time_per_output_chunk",
    }
    assert not renamed_away & set(found)
    inference = {p.attributes[sc.GEN_AI_OPERATION_NAME] for p in found["gen_ai.client.inference.duration"]}
    assert inference == {"chat"}
    # Non-inference operations keep gen_ai.client.operation.duration.
    others = {p.attributes[sc.GEN_AI_OPERATION_NAME] for p in found["gen_ai.client.operation.duration"]}
    assert others == {"embeddings"}
    assert "gen_ai.client.inference.time_to_first_chunk" in found
    assert "gen_ai.client.inference.time_per_output_chunk" in found
    counters = {
        "gen_ai.client.inference.usage.input_tokens": 10,
        "gen_ai.client.inference.usage.output_tokens": 5,
        "gen_ai.client.inference.usage.cache_read.input_tokens": 0,
        "gen_ai.client.inference.usage.cache_write.input_tokens": 4,
        "gen_ai.client.inference.usage.reasoning.output_tokens": 2,
    }
    for name, value in counters.items():
        [point] = found[name]
        assert point.value == value and point.attributes[sc.GEN_AI_TOKEN_MODALITY] == "unknown"
    for name in (
        "gen_ai.client.inference.operation.input_tokens",
        "gen_ai.client.inference.operation.output_tokens",
    ):
        assert list(found[name][0].explicit_bounds) == CONVENTION_BUCKETS["gen_ai.client.token.usage"]
    for name in (
        "gen_ai.invoke_agent.duration",
        "gen_ai.execute_tool.duration",
        "gen_ai.invoke_workflow.duration",
    ):
        assert list(found[name][0].explicit_bounds) == CONVENTION_BUCKETS["gen_ai.client.operation.duration"]
    by_name = {span.name: dict(span.attributes or {}) for span in found["__spans__"]}
    assert by_name["chat gpt-4o"]["gen_ai.usage.cache_write.input_tokens"] == 4
    assert "gen_ai.usage.cache_creation.input_tokens" not in by_name["chat gpt-4o"]
    assert by_name["retrieval kb"]["gen_ai.retrieval.top_k"] == 3
    # In-process invoke_agent spans lose gen_ai.agent.id and gen_ai.provider.name in the newest conventions.
    assert sc.GEN_AI_AGENT_ID not in by_name["invoke_agent a"]
    assert sc.GEN_AI_PROVIDER_NAME not in by_name["invoke_agent a"]


@pytest.mark.parametrize(
    ("builder", "argument", "expected"),
    [
        (span_names.chat_span_name, "gpt-4o", "chat gpt-4o"),
        (span_names.embeddings_span_name, "e3", "embeddings e3"),
        (span_names.retrieval_span_name, "kb", "retrieval kb"),
        (span_names.invoke_agent_span_name, "planner", "invoke_agent planner"),
        (span_names.create_agent_span_name, "planner", "create_agent planner"),
        (span_names.execute_tool_span_name, "search", "execute_tool search"),
        (span_names.invoke_workflow_span_name, "triage", "invoke_workflow triage"),
        (span_names.invoke_agent_span_name, None, "invoke_agent"),
    ],
)
def test_otel_span_name_builders(builder: Any, argument: str | None, expected: str) -> None:
    assert builder(argument) == expected


def test_otel_mcp_span_names() -> None:
    assert span_names.mcp_span_name("tools/call", "get_weather") == "tools/call get_weather"
    assert span_names.mcp_span_name("initialize") == "initialize"
