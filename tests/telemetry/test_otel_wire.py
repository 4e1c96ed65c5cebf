"""The real OTLP/HTTP exporter against a tiny local HTTP server: the wire works, and carries no prompt."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.content import CAPTURE_ENV
from fleetplane.telemetry.cost import TokenUsage
from fleetplane.telemetry.setup import OtlpHttp, Telemetry

PROMPT = "Summarise the capybara-lantern incident for the board"


class Collector:
    """Records every POST it is sent, by path, and answers 200 as an OTLP receiver does."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {}
        self.headers: list[dict[str, str]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                collector.bodies.setdefault(self.path, []).append(body)
                collector.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def all_bytes(self) -> bytes:
        return b"".join(body for bodies in self.bodies.values() for body in bodies)

    def span_names(self) -> list[str]:
        names = []
        for body in self.bodies.get("/v1/traces", []):
            request = ExportTraceServiceRequest.FromString(body)
            names += [s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        return names


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.server.shutdown()
    c.server.server_close()


def one_turn(telemetry: Telemetry) -> None:
    spans = telemetry.spans
    with spans.invoke_agent_span("briefer"):
        with spans.chat_span(provider="openai", model="gpt-4o") as chat:
            chat.record_input([{"role": "user", "content": PROMPT}])
            chat.record_output([{"role": "assistant", "content": f"Sure: {PROMPT}"}])
            chat.set_usage(TokenUsage(input_tokens=20, output_tokens=9))
        with spans.execute_tool_span("search") as tool:
            tool.record_tool_arguments({"q": PROMPT})


def test_otel_otlp_http_exports_traces_metrics_and_logs_to_the_endpoint(collector: Collector) -> None:
    telemetry = Telemetry.create(
        "wire-test", otlp=OtlpHttp.to(collector.url), environ={CAPTURE_ENV: "SPAN_AND_EVENT"}
    )
    one_turn(telemetry)
    assert telemetry.shutdown(timeout_s=10)
    assert set(collector.bodies) == {"/v1/traces", "/v1/metrics", "/v1/logs"}
    assert sorted(collector.span_names()) == ["chat gpt-4o", "execute_tool search", "invoke_agent briefer"]
    request = ExportTraceServiceRequest.FromString(collector.bodies["/v1/traces"][0])
    resource = {a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "wire-test"
    metric_names = {
        m.name
        for body in collector.bodies["/v1/metrics"]
        for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert {
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "fleetplane.tool.calls",
    } <= metric_names
    events = [
        record.event_name
        for body in collector.bodies["/v1/logs"]
        for rl in ExportLogsServiceRequest.FromString(body).resource_logs
        for sl in rl.scope_logs
        for record in sl.log_records
    ]
    assert events == [sc.EVENT_INFERENCE_DETAILS]
    assert PROMPT.encode() in collector.all_bytes()  # capture was asked for, so content did travel


def test_otel_with_capture_off_no_prompt_byte_reaches_the_collector(collector: Collector) -> None:
    telemetry = Telemetry.create("wire-test", otlp=OtlpHttp.to(collector.url), environ={})
    one_turn(telemetry)
    assert telemetry.shutdown(timeout_s=10)
    assert collector.span_names()
    wire = collector.all_bytes()
    for fragment in (PROMPT, "capybara", "lantern"):
        assert fragment.encode() not in wire
    assert "/v1/logs" not in collector.bodies


def test_otel_endpoints_come_from_the_standard_environment(collector: Collector) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{collector.url}/custom/traces",
        "OTEL_METRICS_EXPORTER": "none",
    }
    found = OtlpHttp.from_env(environ)
    assert found == OtlpHttp(f"{collector.url}/custom/traces", None, f"{collector.url}/v1/logs")
    assert OtlpHttp.from_env({}) is None
    telemetry = Telemetry.create("env-test", environ=environ)
    one_turn(telemetry)
    assert telemetry.shutdown(timeout_s=10)
    assert set(collector.bodies) == {"/custom/traces"}
    request = ExportTraceServiceRequest.FromString(collector.bodies["/custom/traces"][0])
    assert len([s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]) == 3


def test_otel_an_unreachable_endpoint_costs_the_caller_nothing_and_is_counted() -> None:
    # Port 9 on loopback refuses connections: spans still open and close, and the loss is counted.
    reader = InMemoryMetricReader()
    destination = OtlpHttp(traces_endpoint="http://127.0.0.1:9/v1/traces", timeout_s=0.5)
    telemetry = Telemetry.create("nowhere", otlp=destination, metric_readers=[reader], environ={})
    with telemetry.spans.invoke_agent_span("a"):
        pass
    telemetry.tracer_provider.force_flush()
    data = reader.get_metrics_data()
    assert data is not None
    [dropped] = [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "fleetplane.telemetry.dropped"
        for point in m.data.data_points
    ]
    assert dropped.value == 1 and dropped.attributes[sc.ERROR_TYPE] == "export_failed"
    assert telemetry.shutdown(timeout_s=5)
