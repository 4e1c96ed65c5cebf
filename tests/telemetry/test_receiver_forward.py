"""Forwarding: what one receiver accepts reaches a second receiver (its own routes, port and store) as it
was received, through retries while the second is down, never in a loop, and never when refused."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).parent))

from telemetry_harness import ReceiverUnderTest, free_socket, start_receiver

from fleetplane.telemetry.forwarder import ForwardTarget, forward_targets

FAST_RETRIES = {"initial_backoff": 0.05, "max_backoff": 0.2, "max_attempts": 100}


@pytest.fixture
def downstream(sqlite_url: str) -> Iterator[ReceiverUnderTest]:
    server = start_receiver(sqlite_url)
    yield server
    server.stop()


def spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("forward.test")
    with (
        tracer.start_as_current_span("invoke_agent a", attributes={"gen_ai.agent.name": "a"}),
        tracer.start_as_current_span("chat m", attributes={"gen_ai.usage.input_tokens": 5}),
    ):
        pass
    return list(memory.get_finished_spans())


def trace_of(server: ReceiverUnderTest, trace_id: str) -> dict[str, object]:
    server.flush()
    view = server.call(lambda s: s.get_trace(trace_id))
    return {} if view is None else {n.span.span_id: n.span for n in view.walk()}


def test_everything_accepted_is_forwarded_and_stored_alike(
    database_url: str, downstream: ReceiverUnderTest
) -> None:
    upstream = start_receiver(
        database_url,
        environ={"OTEL_EXPORTER_OTLP_ENDPOINT": downstream.url + "/"},
        forwarder_options=FAST_RETRIES,
    )
    try:
        sent = spans()
        exporter = OTLPSpanExporter(
            endpoint=f"{upstream.url}/v1/traces", compression=Compression.Gzip, timeout=10
        )
        assert exporter.export(sent) == SpanExportResult.SUCCESS
        logs = InMemoryLogRecordExporter()
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
        logger_provider.get_logger("forward.test").emit(event_name="e", body="hello")
        assert (
            OTLPLogExporter(endpoint=f"{upstream.url}/v1/logs", timeout=10)
            .export(logs.get_finished_logs())
            .name
            == "SUCCESS"
        )
        reader = InMemoryMetricReader()
        meter = MeterProvider(metric_readers=[reader]).get_meter("forward.test")
        meter.create_counter("requests").add(3)
        meter.create_histogram("latency", unit="s").record(0.5)
        data = reader.get_metrics_data()
        assert data is not None
        assert (
            OTLPMetricExporter(endpoint=f"{upstream.url}/v1/metrics", timeout=10).export(data)
            == MetricExportResult.SUCCESS
        )

        downstream.wait_for(lambda: downstream.receiver.accepted == {"traces": 2, "metrics": 2, "logs": 1})
        trace_id = f"{sent[0].context.trace_id:032x}"
        assert trace_of(downstream, trace_id) == trace_of(upstream, trace_id)
        assert len(trace_of(downstream, trace_id)) == 2
        assert upstream.receiver.forwarder is not None
        assert (upstream.receiver.forwarder.forwarded, upstream.receiver.forwarder.failed) == (3, 0)
    finally:
        upstream.stop()


def test_forwarding_retries_until_the_endpoint_comes_up(sqlite_url: str, tmp_path: Path) -> None:
    reserved = free_socket()
    port = reserved.getsockname()[1]
    reserved.close()
    upstream = start_receiver(
        sqlite_url,
        environ={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{port}/v1/traces"},
        forwarder_options=FAST_RETRIES,
    )
    try:
        sent = spans()
        assert (
            OTLPSpanExporter(endpoint=f"{upstream.url}/v1/traces", timeout=10).export(sent)
            == SpanExportResult.SUCCESS
        )
        forwarder = upstream.receiver.forwarder
        assert forwarder is not None and not forwarder.forwards("logs")
        upstream.wait_for(lambda: forwarder.pending == 1)

        late = start_receiver(f"sqlite:///{tmp_path / 'late.db'}", port=port)
        try:
            late.wait_for(lambda: late.receiver.accepted["traces"] == 2)
            assert len(trace_of(late, f"{sent[0].context.trace_id:032x}")) == 2
            assert (forwarder.forwarded, forwarder.failed, forwarder.pending) == (1, 0, 0)
        finally:
            late.stop()
    finally:
        upstream.stop()


def test_an_endpoint_pointing_back_at_the_receiver_does_not_loop(sqlite_url: str) -> None:
    reserved = free_socket()
    port = reserved.getsockname()[1]
    reserved.close()
    server = start_receiver(
        sqlite_url, environ={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}, port=port
    )
    try:
        assert (
            OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", timeout=10).export(spans())
            == SpanExportResult.SUCCESS
        )
        forwarder = server.receiver.forwarder
        assert forwarder is not None
        server.wait_for(lambda: forwarder.forwarded == 1)
        server.flush()
        assert (forwarder.forwarded, forwarder.pending, server.receiver.accepted["traces"]) == (1, 0, 2)
    finally:
        server.stop()


def test_a_refused_body_is_not_forwarded(sqlite_url: str, downstream: ReceiverUnderTest) -> None:
    upstream = start_receiver(sqlite_url, environ={"OTEL_EXPORTER_OTLP_ENDPOINT": downstream.url})
    try:
        response = httpx.post(
            f"{upstream.url}/v1/traces",
            content=b"\xff\xff",
            headers={"content-type": "application/x-protobuf"},
        )
        assert response.status_code == 400
        forwarder = upstream.receiver.forwarder
        assert forwarder is not None and (forwarder.pending, forwarder.forwarded) == (0, 0)
        assert downstream.receiver.accepted == {"traces": 0, "metrics": 0, "logs": 0}
    finally:
        upstream.stop()


def test_targets_follow_the_otlp_exporter_variables() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:9000/ingest",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc,x-team=support",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "x-team=metrics",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "500",
    }

    assert forward_targets(environ) == {
        "traces": ForwardTarget(
            "http://collector:4318/v1/traces", {"authorization": "Bearer abc", "x-team": "support"}, 0.5
        ),
        "metrics": ForwardTarget(
            "http://collector:4318/v1/metrics", {"authorization": "Bearer abc", "x-team": "metrics"}, 2.5
        ),
        "logs": ForwardTarget(
            "http://logs:9000/ingest", {"authorization": "Bearer abc", "x-team": "support"}, 2.5
        ),
    }
    assert forward_targets({}) == {}
