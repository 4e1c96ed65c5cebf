"""The gateway's own spans and metrics, read from an in-memory pipeline: plain and streamed calls,
fallbacks, refusals, and the caller's trace joined."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from harness import GatewayUnderTest, start_gateway, write_fleet
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan

from fleetplane.sim.process import SimProcess
from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.setup import InMemorySink, Telemetry


class Traced:
    def __init__(self, gateway: GatewayUnderTest, sink: InMemorySink, metrics: InMemoryMetricReader,
                 telemetry: Telemetry) -> None:  # fmt: skip
        self.gateway, self.sink, self.metrics, self.telemetry = gateway, sink, metrics, telemetry

    def spans(self, count: int) -> list[ReadableSpan]:
        deadline = time.monotonic() + 10
        while True:
            self.telemetry.force_flush(5)
            if len(self.sink.spans) >= count or time.monotonic() > deadline:
                return list(self.sink.spans)
            time.sleep(0.05)

    def histogram(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        points = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


@pytest.fixture
def traced(tmp_path: Path, sim: SimProcess) -> Iterator[Traced]:
    sink, metrics = InMemorySink(), InMemoryMetricReader()
    telemetry = Telemetry.create("fleetplane-gateway", span_sinks=[sink], log_sinks=[sink],
                                 metric_readers=[metrics], otlp=False, environ={})  # fmt: skip
    fleet = write_fleet(tmp_path / "fleet")
    gateway = start_gateway(fleet, f"sqlite:///{tmp_path / 'db.sqlite'}", sim.base_url, telemetry=telemetry)
    yield Traced(gateway, sink, metrics, telemetry)
    gateway.stop()
    telemetry.shutdown(5)


def client(traced: Traced) -> openai.OpenAI:
    return openai.OpenAI(base_url=traced.gateway.v1, api_key=traced.gateway.keys["full"], max_retries=0)


def test_a_plain_call_is_a_chat_span_joining_the_callers_trace(traced: Traced) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    client(traced).chat.completions.create(
        model="chain", messages=[{"role": "user", "content": "hi [[sim output_tokens=6]]"}],
        max_tokens=50, extra_headers={"traceparent": parent, "x-fleetplane-prompt-version": "v7"},
    )  # fmt: skip
    [span] = traced.spans(1)
    assert span.name == "chat chain"
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent is not None and format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
    attributes = dict(span.attributes or {})
    assert attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 6
    assert attributes[sc.GEN_AI_PROMPT_VERSION] == "v7"
    assert attributes[sc.FP_DEPLOYMENT] == "sim/sim-large"
    assert attributes[sc.FP_FALLBACK_HOPS] == 0
    assert span.start_time is not None and span.end_time is not None and span.end_time > span.start_time


def test_a_streamed_call_records_usage_and_time_to_first_chunk(traced: Traced) -> None:
    stream = client(traced).chat.completions.create(
        model="solo", messages=[{"role": "user", "content": "s [[sim output_tokens=9 tps=200]]"}], stream=True
    )
    assert sum(1 for _ in stream) > 0
    [span] = traced.spans(1)
    attributes = dict(span.attributes or {})
    assert attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 9
    assert attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    ttft = traced.histogram(traced.telemetry.names.time_to_first_chunk.name)
    assert [p.count for p in ttft] == [1]
    tokens = traced.histogram("gen_ai.client.token.usage")
    assert sorted(p.attributes[sc.GEN_AI_TOKEN_TYPE] for p in tokens) == ["input", "output"]


def test_fallbacks_and_refusals_show_in_spans_and_metrics(traced: Traced, sim: SimProcess) -> None:
    sim.add_fault("error", "sim-large", status=503)
    client(traced).chat.completions.create(model="chain", messages=[{"role": "user", "content": "x"}])
    key = traced.gateway.keys["full"]
    response = httpx.post(
        traced.gateway.v1 + "/chat/completions",
        json={"model": "missing-group", "messages": []},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 400  # refused before a model group is known: no span
    [span] = traced.spans(1)
    attributes = dict(span.attributes or {})
    assert attributes[sc.FP_FALLBACK_HOPS] == 1
    assert attributes[sc.FP_DEPLOYMENT] == "sim/sim-medium"
    attempts = [e for e in span.events if e.name == "fleetplane.attempt"]
    assert [dict(e.attributes or {})["fleetplane.deployment"] for e in attempts] == [
        "sim/sim-large",
        "sim/sim-medium",
    ]
    fallbacks = traced.histogram(sc.FP_FALLBACKS.name)
    assert [p.value for p in fallbacks] == [1]
