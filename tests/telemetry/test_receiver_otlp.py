"""The OTLP/HTTP receiver fed by the official exporters (protobuf, gzip, deflate) and by OTLP/JSON built by
hand from the spec; what is stored equals the in-process conversion of the same spans, on both stores."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace import Status as SpanStatus

sys.path.insert(0, str(Path(__file__).parent))

from telemetry_harness import ReceiverUnderTest, start_receiver

from fleetplane.telemetry.records import SpanRecord, from_sdk_log, from_sdk_span

RESOURCE = {"service.name": "triage-agent", "fleetplane.team": "support"}


@pytest.fixture
def receiver(database_url: str) -> Iterator[ReceiverUnderTest]:
    server = start_receiver(database_url)
    yield server
    server.stop()


def make_spans() -> list[ReadableSpan]:
    """An agent turn: invoke_agent → chat (old GenAI names) and a failing execute_tool."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(RESOURCE))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test.scope", "1.2.3")
    agent_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage"}
    with tracer.start_as_current_span("invoke_agent triage", attributes=agent_attrs):
        chat_attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",  # today's name for gen_ai.provider.name
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": 100,  # the old name for input tokens
            "gen_ai.usage.output_tokens": 20,
            "fleetplane.cost.usd": 0.0012,
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.prompt.name": "triage",
            "gen_ai.prompt.version": "3",
            "fleetplane.key": "k-abc",
            "temperatures": (0.1, 0.2),
            "flags": (True, False),
        }
        with tracer.start_as_current_span(
            "chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=chat_attrs
        ) as chat:
            chat.add_event("gen_ai.choice", {"index": 0})
        with tracer.start_as_current_span("execute_tool lookup") as tool:
            tool.set_attribute("error.type", "tool_error")
            tool.set_status(SpanStatus(StatusCode.ERROR, "lookup failed"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def stored(receiver: ReceiverUnderTest, trace_id: str) -> dict[str, SpanRecord]:
    receiver.flush()
    view = receiver.call(lambda s: s.get_trace(trace_id))
    assert view is not None
    return {node.span.span_id: node.span for node in view.walk()}


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate])
def test_official_exporter_spans_store_as_the_in_process_conversion(
    receiver: ReceiverUnderTest, compression: Compression
) -> None:
    spans = make_spans()
    exporter = OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces", compression=compression, timeout=10)

    assert exporter.export(spans) == SpanExportResult.SUCCESS

    trace_id = f"{spans[0].context.trace_id:032x}"
    got = stored(receiver, trace_id)
    expected = {r.span_id: r for r in map(from_sdk_span, spans) if r is not None}
    assert got == expected
    chat = next(r for r in got.values() if r.operation == "chat")
    assert (chat.provider, chat.request_model, chat.input_tokens, chat.output_tokens) == (
        "openai",
        "gpt-4o-mini",
        100,
        20,
    )
    assert (chat.cost_usd, chat.finish_reasons, chat.kind) == (Decimal("0.0012"), ["stop"], "client")
    assert (chat.team, chat.agent, chat.key, chat.prompt_version) == ("support", None, "k-abc", "3")
    assert chat.attributes["temperatures"] == [0.1, 0.2]
    assert chat.events == [
        {"name": "gen_ai.choice", "time_ns": chat.events[0]["time_ns"], "attributes": {"index": 0}}
    ]
    assert chat.scope_name == "test.scope" and chat.scope_version == "1.2.3"
    tool = next(r for r in got.values() if r.name == "execute_tool lookup")
    assert (tool.status_code, tool.status_message, tool.error_type) == (
        "error",
        "lookup failed",
        "tool_error",
    )
    root = next(r for r in got.values() if r.parent_span_id is None)
    assert root.agent == "triage"
    assert {r.parent_span_id for r in got.values() if r is not root} == {root.span_id}


def test_a_retried_export_stores_nothing_twice(receiver: ReceiverUnderTest) -> None:
    spans = make_spans()
    exporter = OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces", timeout=10)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert exporter.export(spans) == SpanExportResult.SUCCESS

    assert len(stored(receiver, f"{spans[0].context.trace_id:032x}")) == 3
    assert receiver.receiver.accepted["traces"] == 6


def test_official_log_exporter_events_land_under_their_span(receiver: ReceiverUnderTest) -> None:
    spans = make_spans()
    chat = next(s for s in spans if s.name.startswith("chat"))
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create(RESOURCE))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("test.scope")
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan

    context = trace.set_span_in_context(NonRecordingSpan(chat.context))
    logger.emit(
        event_name="gen_ai.client.inference.operation.details",
        body={"gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]},
        attributes={"gen_ai.operation.name": "chat"},
        severity_number=SeverityNumber.INFO,
        context=context,
    )
    logs = list(memory.get_finished_logs())
    exporter = OTLPLogExporter(endpoint=f"{receiver.url}/v1/logs", compression=Compression.Gzip, timeout=10)
    assert (
        OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces", timeout=10).export(spans)
        == SpanExportResult.SUCCESS
    )

    assert exporter.export(logs) == LogRecordExportResult.SUCCESS

    receiver.flush()
    view = receiver.call(lambda s: s.get_trace(f"{chat.context.trace_id:032x}"))
    assert view is not None
    node = next(n for n in view.walk() if n.span.span_id == f"{chat.context.span_id:016x}")
    assert node.events == [from_sdk_log(logs[0])]
    assert node.events[0].event_name == "gen_ai.client.inference.operation.details"
    assert node.events[0].body == {
        "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    }
    assert node.events[0].severity_number == SeverityNumber.INFO.value


# --- OTLP/JSON by hand, per the spec: hex ids, int64 as strings, enums as integers, every AnyValue kind ---

TRACE_ID = "5b8efff798038103d269b633813fc60c"
ROOT_ID = "eee19b7ec3c1b174"
CHILD_ID = "eee19b7ec3c1b173"
START = 1_700_000_000_000_000_000


def json_request() -> dict[str, Any]:
    def span(
        span_id: str, parent: str, name: str, attributes: list[dict[str, Any]], status: int
    ) -> dict[str, Any]:
        return {
            "traceId": TRACE_ID,
            "spanId": span_id,
            "parentSpanId": parent,
            "name": name,
            "kind": 3,
            "startTimeUnixNano": str(START),
            "endTimeUnixNano": str(START + 1_500_000_000),
            "attributes": attributes,
            "events": [
                {
                    "timeUnixNano": str(START + 1),
                    "name": "ev",
                    "attributes": [{"key": "n", "value": {"intValue": "7"}}],
                }
            ],
            "status": {"code": status, "message": "bad" if status == 2 else ""},
            "unknownFieldFromTheFuture": {"ignored": True},
        }

    attributes = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.provider.name", "value": {"stringValue": "anthropic"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "claude"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "9007199254740993"}},
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 12}},
        {"key": "fleetplane.cost.usd", "value": {"doubleValue": 0.25}},
        {"key": "ok", "value": {"boolValue": True}},
        {"key": "raw", "value": {"bytesValue": "aGk="}},
        {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}, {}]}}},
        {
            "key": "map",
            "value": {"kvlistValue": {"values": [{"key": "inner", "value": {"doubleValue": 1.5}}]}},
        },
    ]
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "hand", "version": "1"},
                        "spans": [
                            span(ROOT_ID, "", "invoke_agent a", [], 1),
                            span(CHILD_ID, ROOT_ID, "chat claude", attributes, 2),
                        ],
                    }
                ],
            }
        ]
    }


def proto_request() -> ExportTraceServiceRequest:
    """The same request as `json_request`, built as a protobuf message."""

    def kv(key: str, value: AnyValue) -> KeyValue:
        return KeyValue(key=key, value=value)

    attributes = [
        kv("gen_ai.operation.name", AnyValue(string_value="chat")),
        kv("gen_ai.provider.name", AnyValue(string_value="anthropic")),
        kv("gen_ai.request.model", AnyValue(string_value="claude")),
        kv("gen_ai.usage.input_tokens", AnyValue(int_value=9007199254740993)),
        kv("gen_ai.usage.output_tokens", AnyValue(int_value=12)),
        kv("fleetplane.cost.usd", AnyValue(double_value=0.25)),
        kv("ok", AnyValue(bool_value=True)),
        kv("raw", AnyValue(bytes_value=b"hi")),
        kv(
            "list",
            AnyValue(
                array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue(int_value=1), AnyValue()])
            ),
        ),
        kv("map", AnyValue(kvlist_value=KeyValueList(values=[kv("inner", AnyValue(double_value=1.5))]))),
    ]

    def span(span_id: str, parent: str, name: str, attrs: list[KeyValue], status: int) -> Span:
        return Span(
            trace_id=bytes.fromhex(TRACE_ID),
            span_id=bytes.fromhex(span_id),
            parent_span_id=bytes.fromhex(parent),
            name=name,
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=START,
            end_time_unix_nano=START + 1_500_000_000,
            attributes=attrs,
            events=[
                Span.Event(time_unix_nano=START + 1, name="ev", attributes=[kv("n", AnyValue(int_value=7))])
            ],
            status=Status(code=status, message="bad" if status == 2 else ""),
        )

    request = ExportTraceServiceRequest()
    request.resource_spans.append(
        ResourceSpans(
            resource={"attributes": [kv("service.name", AnyValue(string_value="svc"))]},
            scope_spans=[
                ScopeSpans(
                    scope={"name": "hand", "version": "1"},
                    spans=[
                        span(ROOT_ID, "", "invoke_agent a", [], 1),
                        span(CHILD_ID, ROOT_ID, "chat claude", attributes, 2),
                    ],
                )
            ],
        )
    )
    return request


def test_otlp_json_by_hand_stores_as_the_same_protobuf(receiver: ReceiverUnderTest) -> None:
    answer = httpx.post(
        f"{receiver.url}/v1/traces",
        content=orjson.dumps(json_request()),
        headers={"content-type": "application/json; charset=utf-8"},
        timeout=10,
    )
    assert (answer.status_code, answer.headers["content-type"], answer.json()) == (
        200,
        "application/json",
        {},
    )
    from_json = stored(receiver, TRACE_ID)
    assert receiver.call(lambda s: s.delete_older_than(START / 1e9 + 3600)) == 2  # empty it again

    answer = httpx.post(
        f"{receiver.url}/v1/traces",
        content=proto_request().SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
        timeout=10,
    )
    assert (answer.status_code, answer.headers["content-type"], answer.content) == (
        200,
        "application/x-protobuf",
        b"",
    )
    assert stored(receiver, TRACE_ID) == from_json

    root, chat = from_json[ROOT_ID], from_json[CHILD_ID]
    assert (root.parent_span_id, root.status_code, chat.parent_span_id, chat.status_code) == (
        None,
        "ok",
        ROOT_ID,
        "error",
    )
    assert (chat.kind, chat.start_ns, chat.duration_ns, chat.status_message) == (
        "client",
        START,
        1_500_000_000,
        "bad",
    )
    assert (chat.provider, chat.input_tokens, chat.output_tokens, chat.cost_usd) == (
        "anthropic",
        9007199254740993,
        12,
        Decimal("0.25"),
    )
    assert chat.attributes["raw"] == "aGk="
    assert chat.attributes["list"] == ["a", 1, None]
    assert chat.attributes["map"] == {"inner": 1.5}
    assert chat.attributes["ok"] is True
    assert chat.events == [{"name": "ev", "time_ns": START + 1, "attributes": {"n": 7}}]
    assert (chat.service_name, chat.scope_name, chat.resource) == ("svc", "hand", {"service.name": "svc"})
