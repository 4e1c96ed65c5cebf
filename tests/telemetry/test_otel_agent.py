"""The agent-side SDK: decorators on sync and async functions, errors, and joining the gateway's trace."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from fleetplane import telemetry
from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.content import CAPTURE_ENV
from fleetplane.telemetry.setup import InMemorySink, Telemetry

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class FakeGateway:
    """A local HTTP server answering chat completions and OTLP posts, remembering what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                payload = json.dumps(COMPLETION).encode() if self.path.endswith("/chat/completions") else b""
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def headers_for(self, suffix: str) -> list[dict[str, str]]:
        return [headers for path, headers, _ in self.requests if path.endswith(suffix)]


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    g = FakeGateway()
    yield g
    g.httpd.shutdown()
    g.httpd.server_close()


class Agent:
    """The pipeline `telemetry.configure()` set up, with an in-memory sink to read it."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.memory = InMemorySink()
        self.telemetry: Telemetry = telemetry.configure(
            "agent-test", install_global=False, span_sinks=(self.memory,), environ=environ or {}
        )

    def finished(self) -> dict[str, ReadableSpan]:
        assert self.telemetry.force_flush()
        return {span.name: span for span in self.memory.spans}

    def all(self) -> list[ReadableSpan]:
        assert self.telemetry.force_flush()
        return list(self.memory.spans)


@pytest.fixture
def pipe() -> Iterator[Agent]:
    configured = Agent()
    yield configured
    telemetry.shutdown()


@telemetry.tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Longer description that is not the tool description."""
    return a + b


@telemetry.tool(name="fetch_page")
async def fetch(url: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    if "missing" in url:
        return {"isError": True, "content": [{"type": "text", "text": "404"}]}
    return {"content": [{"type": "text", "text": "page"}]}


@telemetry.tool
def explode() -> None:
    raise KeyError("nope")


@telemetry.agent
def sync_agent(x: int) -> int:
    return add(x, 1)


@telemetry.agent(name="researcher")
async def async_agent(url: str) -> dict[str, Any]:
    return await fetch(url)


def test_otel_decorators_build_agent_tool_trees_on_sync_functions(pipe: Agent) -> None:
    assert sync_agent(41) == 42
    assert sync_agent.__name__ == "sync_agent" and add.__doc__ is not None
    spans = pipe.finished()
    root, tool = spans["invoke_agent sync_agent"], spans["execute_tool add"]
    assert root.kind is SpanKind.INTERNAL and tool.kind is SpanKind.INTERNAL
    assert tool.parent is not None and tool.parent.span_id == root.context.span_id
    assert dict(tool.attributes or {}) == {
        sc.GEN_AI_OPERATION_NAME: "execute_tool",
        sc.GEN_AI_TOOL_NAME: "add",
        sc.GEN_AI_TOOL_TYPE: "function",
        sc.GEN_AI_TOOL_DESCRIPTION: "Add two numbers.",
        sc.GEN_AI_AGENT_NAME: "sync_agent",
    }


def test_otel_decorators_work_on_async_functions_and_mark_tool_errors(pipe: Agent) -> None:
    assert asyncio.run(async_agent("https://example.test/"))["content"][0]["text"] == "page"
    assert asyncio.run(async_agent("https://example.test/missing"))["isError"] is True
    spans = pipe.all()
    tools = [s for s in spans if s.name == "execute_tool fetch_page"]
    agents = [s for s in spans if s.name == "invoke_agent researcher"]
    assert len(tools) == 2 and len(agents) == 2
    errors = sorted(str((s.attributes or {}).get(sc.ERROR_TYPE)) for s in tools)
    assert errors == ["None", "tool_error"]
    for tool in tools:
        assert tool.parent is not None and tool.parent.span_id in {a.context.span_id for a in agents}


def test_otel_exceptions_in_decorated_functions_set_error_type_and_propagate(pipe: Agent) -> None:
    with pytest.raises(KeyError):
        explode()
    span = pipe.finished()["execute_tool explode"]
    assert (span.attributes or {})[sc.ERROR_TYPE] == "KeyError"


def test_otel_tool_arguments_are_recorded_only_when_capture_allows() -> None:
    configured = Agent({CAPTURE_ENV: "SPAN_ONLY"})
    try:
        add(2, b=3)
        spans = configured.finished()
    finally:
        telemetry.shutdown()
    attrs = spans["execute_tool add"].attributes or {}
    assert json.loads(str(attrs[sc.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"a": 2, "b": 3}
    assert json.loads(str(attrs[sc.GEN_AI_TOOL_CALL_RESULT])) == 5


def test_otel_context_manager_spans_from_the_package(pipe: Agent) -> None:
    with telemetry.workflow_span("triage"), telemetry.agent_span("planner"):
        with telemetry.retrieval_span("kb"):
            pass
        with telemetry.tool_span("search") as tool:
            tool.tool_error()
    spans = pipe.finished()
    assert set(spans) == {
        "invoke_workflow triage",
        "invoke_agent planner",
        "retrieval kb",
        "execute_tool search",
    }
    assert spans["invoke_agent planner"].parent.span_id == spans["invoke_workflow triage"].context.span_id  # type: ignore[union-attr]


def test_otel_without_configure_decorated_functions_still_run() -> None:
    # No pipeline configured: spans go to the global OpenTelemetry API (a no-op unless one is installed).
    assert sync_agent(1) == 2
    assert asyncio.run(async_agent("https://example.test/"))["content"][0]["text"] == "page"


def test_otel_the_package_exports_the_decorator_not_the_module() -> None:
    from fleetplane.telemetry import agent

    assert not isinstance(agent, ModuleType) and agent.__name__ == "agent"


def test_otel_the_openai_sdk_carries_the_agent_trace_to_the_gateway(
    pipe: Agent, gateway: FakeGateway
) -> None:
    hooked = openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key="k", http_client=telemetry.instrument_httpx(httpx.Client())
    )
    plain = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k")
    with telemetry.agent_span("caller") as span:
        hooked.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        plain.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=telemetry.trace_headers(),
        )
    context = span.span.get_span_context()
    sent = gateway.headers_for("/chat/completions")
    assert len(sent) == 2
    for headers in sent:
        _, trace_id, parent_id, _ = headers["traceparent"].split("-")
        assert (trace_id, parent_id) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")


def test_otel_the_async_httpx_hook_injects_trace_headers(pipe: Agent, gateway: FakeGateway) -> None:
    async def call() -> str:
        hooks = {"request": [telemetry.httpx_async_request_hook]}
        async with httpx.AsyncClient(event_hooks=hooks) as client, telemetry.tool_span("http") as span:
            await client.post(f"{gateway.url}/v1/chat/completions", json={})
            return f"{span.span.get_span_context().span_id:016x}"

    span_id = asyncio.run(call())
    [headers] = gateway.headers_for("/chat/completions")
    assert headers["traceparent"].split("-")[2] == span_id


def test_otel_configure_exports_over_otlp_to_the_given_endpoint(gateway: FakeGateway) -> None:
    telemetry.configure("exported-agent", gateway.url, install_global=False, environ={})
    assert sync_agent(1) == 2
    assert telemetry.shutdown(timeout_s=10)
    bodies = [body for path, _, body in gateway.requests if path == "/v1/traces"]
    names = {
        s.name
        for body in bodies
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    }
    assert names == {"invoke_agent sync_agent", "execute_tool add"}


def test_otel_configure_without_any_endpoint_works(gateway: FakeGateway) -> None:
    telemetry.configure("lonely-agent", install_global=False, environ={})
    assert sync_agent(2) == 3
    with telemetry.agent_span("a"):
        # Spans are still real, so trace context still reaches the gateway.
        assert "traceparent" in telemetry.trace_headers()
    assert telemetry.shutdown(timeout_s=5)
    assert gateway.requests == []
