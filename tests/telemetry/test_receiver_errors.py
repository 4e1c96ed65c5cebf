"""Every refusal of the OTLP receiver: exact status and body (a google.rpc.Status in the request's encoding,
JSON when the encoding is unknown), partial success for items that cannot be stored, and nothing stored."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))

from telemetry_harness import ReceiverUnderTest, start_receiver

from fleetplane.store.tables import telemetry_events, telemetry_spans
from fleetplane.telemetry.spanstore import SpanStore

LIMIT = 2048
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def receiver(database_url: str) -> Iterator[ReceiverUnderTest]:
    server = start_receiver(database_url, max_body=LIMIT)
    yield server
    server.stop()


def rows(receiver: ReceiverUnderTest) -> tuple[int, int]:
    """(spans, events) stored once everything queued is written."""

    async def count(spans: SpanStore) -> tuple[int, int]:
        await spans.flush()
        async with spans.store.engine.connect() as conn:
            n_spans = (await conn.execute(select(func.count()).select_from(telemetry_spans))).scalar()
            n_events = (await conn.execute(select(func.count()).select_from(telemetry_events))).scalar()
        return int(n_spans or 0), int(n_events or 0)

    return receiver.call(count)


def post(receiver: ReceiverUnderTest, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{receiver.url}{path}", content=body, headers=headers, timeout=10)


def span(name: str, trace_id: bytes, span_id: bytes) -> Span:
    return Span(trace_id=trace_id, span_id=span_id, name=name, start_time_unix_nano=1, end_time_unix_nano=2)


def traces(*spans: Span) -> bytes:
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])]
    )
    return request.SerializeToString()


def status_of(response: httpx.Response) -> tuple[int, str]:
    status = Status.FromString(response.content)
    return status.code, status.message


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            {"content-type": "text/plain"},
            "unsupported content type 'text/plain': send application/x-protobuf or application/json",
        ),
        ({}, "no content type: send application/x-protobuf or application/json"),
        (
            {**PROTOBUF, "content-encoding": "br"},
            "unsupported content encoding 'br': send gzip, deflate or no encoding",
        ),
    ],
)
def test_unsupported_media_is_415_in_json(
    receiver: ReceiverUnderTest, headers: dict[str, str], message: str
) -> None:
    response = post(
        receiver, "/v1/traces", traces(span("a", bytes(range(1, 17)), bytes(range(1, 9)))), headers
    )

    assert response.status_code == 415
    assert response.headers["content-type"] == "application/json"
    assert response.content == orjson.dumps({"code": 3, "message": message})
    assert rows(receiver) == (0, 0)


def test_a_declared_length_over_the_limit_is_413(receiver: ReceiverUnderTest) -> None:
    response = post(receiver, "/v1/traces", b"\x00" * (LIMIT + 1), PROTOBUF)

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/x-protobuf"
    assert status_of(response) == (8, f"the body is larger than the limit of {LIMIT} bytes")
    assert rows(receiver) == (0, 0)


def test_a_chunked_body_over_the_limit_is_413(receiver: ReceiverUnderTest) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"{" * 512

    response = httpx.post(f"{receiver.url}/v1/logs", content=chunks(), headers=JSON, timeout=10)

    assert response.status_code == 413
    assert response.json() == {"code": 8, "message": f"the body is larger than the limit of {LIMIT} bytes"}


def test_a_small_gzip_body_that_inflates_past_the_limit_is_413(receiver: ReceiverUnderTest) -> None:
    bomb = gzip.compress(b"\x00" * 1_000_000)
    assert len(bomb) < LIMIT

    response = post(receiver, "/v1/traces", bomb, {**PROTOBUF, "content-encoding": "gzip"})

    assert response.status_code == 413
    assert status_of(response) == (8, f"the decompressed body is larger than the limit of {LIMIT} bytes")


@pytest.mark.parametrize(
    ("path", "body", "headers", "message"),
    [
        ("/v1/traces", b"\xff\xff\xff", PROTOBUF, "the body is not a protobuf ExportTraceServiceRequest"),
        ("/v1/logs", b"\x0a\x05\x01", PROTOBUF, "the body is not a protobuf ExportLogsServiceRequest"),
        ("/v1/traces", b"not gzip", {**PROTOBUF, "content-encoding": "gzip"}, "the body is not valid gzip"),
        (
            "/v1/traces",
            gzip.compress(traces())[:-4],
            {**PROTOBUF, "content-encoding": "gzip"},
            "the body is not valid gzip",
        ),
    ],
)
def test_undecodable_protobuf_is_400_with_a_protobuf_status(
    receiver: ReceiverUnderTest, path: str, body: bytes, headers: dict[str, str], message: str
) -> None:
    response = post(receiver, path, body, headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/x-protobuf"
    assert status_of(response) == (3, message)
    assert rows(receiver) == (0, 0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "the body is not an OTLP/JSON ExportTraceServiceRequest: expected an object"),
        (b"{", "the body is not JSON: unexpected end of data: line 1 column 2 (char 1)"),
        (
            orjson.dumps(
                {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz", "spanId": "01"}]}]}]}
            ),
            "resourceSpans[0].scopeSpans[0].spans[0].traceId: 'xyz' is not a hex id",
        ),
    ],
)
def test_undecodable_json_is_400_with_a_json_status(
    receiver: ReceiverUnderTest, body: bytes, message: str
) -> None:
    response = post(receiver, "/v1/traces", body, JSON)

    assert response.status_code == 400
    assert response.content == orjson.dumps({"code": 3, "message": message})
    assert rows(receiver) == (0, 0)


def test_json_of_the_wrong_shape_is_400(receiver: ReceiverUnderTest) -> None:
    response = post(receiver, "/v1/traces", orjson.dumps({"resourceSpans": 5}), JSON)

    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert response.json()["message"].startswith("the body is not an OTLP/JSON ExportTraceServiceRequest: ")
    assert rows(receiver) == (0, 0)


def test_spans_with_bad_ids_are_rejected_and_the_rest_stored(receiver: ReceiverUnderTest) -> None:
    body = traces(
        span("good", bytes.fromhex(TRACE), bytes(range(1, 9))),
        span("short", b"\x01\x02\x03\x04", bytes(range(1, 9))),
        span("zero", bytes.fromhex(TRACE), bytes(8)),
    )

    response = post(receiver, "/v1/traces", body, PROTOBUF)

    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 2
    assert answer.partial_success.error_message == (
        "span 'short': trace_id must be 16 bytes, got 4; span 'zero': span_id is all zeroes (an invalid id)"
    )
    assert rows(receiver) == (1, 0)


def test_json_partial_success_names_int64_as_a_string(receiver: ReceiverUnderTest) -> None:
    body = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": TRACE, "spanId": "0000000000000000", "name": "zero"}]}]}
        ]
    }

    response = post(receiver, "/v1/traces", orjson.dumps(body), JSON)

    assert response.status_code == 200
    assert response.json() == {
        "partialSuccess": {
            "rejectedSpans": "1",
            "errorMessage": "span 'zero': span_id is all zeroes (an invalid id)",
        }
    }
    assert rows(receiver) == (0, 0)


def test_log_records_with_bad_ids_are_rejected(receiver: ReceiverUnderTest) -> None:
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(time_unix_nano=5, event_name="ok"),
                            LogRecord(time_unix_nano=6, span_id=b"\x01\x02\x03"),
                        ]
                    )
                ]
            )
        ]
    )

    response = post(receiver, "/v1/logs", request.SerializeToString(), PROTOBUF)

    answer = ExportLogsServiceResponse.FromString(response.content)
    assert (response.status_code, answer.partial_success.rejected_log_records) == (200, 1)
    assert answer.partial_success.error_message == "log record: span_id must be 8 bytes, got 3"
    assert rows(receiver) == (0, 1)


def test_metrics_without_a_name_or_data_are_rejected_and_nothing_is_stored(
    receiver: ReceiverUnderTest,
) -> None:
    points = [NumberDataPoint(as_int=1), NumberDataPoint(as_int=2)]
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                scope_metrics=[
                    ScopeMetrics(
                        metrics=[
                            Metric(name="good", gauge=Gauge(data_points=points)),
                            Metric(name="", gauge=Gauge(data_points=points)),
                            Metric(name="empty"),
                        ]
                    )
                ]
            )
        ]
    )

    response = post(receiver, "/v1/metrics", request.SerializeToString(), PROTOBUF)

    answer = ExportMetricsServiceResponse.FromString(response.content)
    assert (response.status_code, answer.partial_success.rejected_data_points) == (200, 3)
    assert answer.partial_success.error_message == "a metric has no name; metric 'empty' has no data"
    assert receiver.receiver.accepted["metrics"] == 2
    assert rows(receiver) == (0, 0)


def test_a_full_span_store_answers_503_so_the_sender_retries(database_url: str) -> None:
    server = start_receiver(database_url, span_options={"max_pending": 1})
    try:
        body = traces(
            span("a", bytes.fromhex(TRACE), bytes(range(1, 9))),
            span("b", bytes.fromhex(TRACE), bytes(range(2, 10))),
        )

        response = post(server, "/v1/traces", body, PROTOBUF)

        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert status_of(response) == (14, "the span store's queue is full; retry later")
        assert rows(server) == (0, 0)
        assert server.spans.dropped == 0  # refused whole, not dropped
    finally:
        server.stop()
