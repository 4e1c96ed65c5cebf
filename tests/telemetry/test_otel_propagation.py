"""W3C trace context round trips: HTTP header dicts, Starlette headers, ASGI pairs, MCP `params._meta`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind
from starlette.datastructures import Headers

from fleetplane.telemetry.propagation import (
    extract_headers,
    extract_mcp_meta,
    inject_headers,
    inject_mcp_meta,
)
from fleetplane.telemetry.setup import InMemorySink, Telemetry


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry.create("propagation", otlp=False, environ={})
    yield t
    t.shutdown()


def test_otel_http_headers_round_trip_trace_context_and_baggage(telemetry: Telemetry) -> None:
    token = otel_context.attach(baggage.set_baggage("fleetplane.team", "search"))
    try:
        with telemetry.spans.invoke_agent_span("a") as span:
            headers = inject_headers({"content-type": "application/json"})
            sent = span.span.get_span_context()
    finally:
        otel_context.detach(token)
    assert set(headers) == {"traceparent", "baggage"}
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{sent.trace_id:032x}", f"{sent.span_id:016x}")
    assert int(flags, 16) & 0x01  # sampled (newer SDKs also set the W3C level-2 "random" bit)

    carriers = [
        headers,
        {key.title(): value for key, value in headers.items()},  # any case
        Headers(headers=headers),  # Starlette
        [(key.encode(), value.encode()) for key, value in headers.items()],  # raw ASGI scope headers
    ]
    for carrier in carriers:
        received = extract_headers(carrier)
        remote = trace.get_current_span(received).get_span_context()
        assert (remote.trace_id, remote.span_id, remote.is_remote) == (sent.trace_id, sent.span_id, True)
        assert baggage.get_baggage("fleetplane.team", received) == "search"


def test_otel_headers_without_context_give_a_new_root(telemetry: Telemetry) -> None:
    with telemetry.spans.invoke_agent_span("ambient"):
        received = extract_headers({"content-type": "text/plain"})
    assert not trace.get_current_span(received).get_span_context().is_valid


def test_otel_a_server_span_joins_the_caller_trace_across_two_pipelines() -> None:
    client_sink, server_sink = InMemorySink(), InMemorySink()
    client = Telemetry.create("agent", span_sinks=[client_sink], otlp=False, environ={})
    server = Telemetry.create("gateway", span_sinks=[server_sink], otlp=False, environ={})
    with client.spans.invoke_agent_span("a") as agent:
        headers = inject_headers()
    with server.spans.chat_span(provider="openai", model="gpt-4o", parent=extract_headers(headers)):
        pass
    client.force_flush()
    server.force_flush()
    [chat] = server_sink.spans
    assert chat.context.trace_id == agent.span.get_span_context().trace_id
    assert chat.parent is not None and chat.parent.span_id == agent.span.get_span_context().span_id
    client.shutdown()
    server.shutdown()


def test_otel_mcp_meta_round_trip_keeps_other_meta(telemetry: Telemetry) -> None:
    sink = InMemorySink()
    server = Telemetry.create("mcp-server", span_sinks=[sink], otlp=False, environ={})
    params = {"name": "get_weather", "arguments": {"city": "Oslo"}, "_meta": {"progressToken": 3}}
    with telemetry.spans.mcp_span("tools/call", "get_weather") as call:
        sent = inject_mcp_meta(params)
    assert sent["_meta"]["progressToken"] == 3 and "traceparent" in sent["_meta"]
    assert params["_meta"] is sent["_meta"]  # written into the request being sent
    assert sent["arguments"] == {"city": "Oslo"}

    with server.spans.mcp_span("tools/call", "get_weather", server=True, parent=extract_mcp_meta(sent)):
        pass
    server.force_flush()
    [handled] = sink.spans
    assert handled.kind is SpanKind.SERVER
    caller = call.span.get_span_context()
    assert handled.context.trace_id == caller.trace_id
    assert handled.parent is not None and handled.parent.span_id == caller.span_id
    assert not trace.get_current_span(extract_mcp_meta({"name": "x"})).get_span_context().is_valid
    assert inject_mcp_meta(None)["_meta"] == {}  # no span: nothing to carry, but a valid _meta
    server.shutdown()
