"""Span helpers: exact names, kinds, parents and attributes, against the constants and the conventions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from fleetplane.state.clock import ManualClock
from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.cost import TokenUsage
from fleetplane.telemetry.setup import InMemorySink, Telemetry
from fleetplane.telemetry.spans import MAX_EXTRA_ATTRIBUTES

# The conventions' required attributes per operation (Required, not Conditionally Required).
REQUIRED = {
    sc.Op.CHAT: {sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME},
    sc.Op.EMBEDDINGS: {sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME},
    sc.Op.EXECUTE_TOOL: {sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_TOOL_NAME},
    sc.Op.INVOKE_AGENT: {sc.GEN_AI_OPERATION_NAME},
    sc.Op.INVOKE_WORKFLOW: {sc.GEN_AI_OPERATION_NAME},
    sc.Op.RETRIEVAL: {sc.GEN_AI_OPERATION_NAME},
}


class Pipeline:
    def __init__(self, environ: dict[str, str] | None = None, clock: ManualClock | None = None) -> None:
        self.sink = InMemorySink()
        self.reader = InMemoryMetricReader()
        self.telemetry = Telemetry.create(
            "test-service",
            span_sinks=[self.sink],
            log_sinks=[self.sink],
            metric_readers=[self.reader],
            otlp=False,
            environ=environ or {},
            clock=clock,
        )
        self.spans = self.telemetry.spans

    def finished(self) -> dict[str, ReadableSpan]:
        assert self.telemetry.force_flush()
        return {span.name: span for span in self.sink.spans}

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found


@pytest.fixture
def pipe() -> Iterator[Pipeline]:
    pipeline = Pipeline()
    yield pipeline
    pipeline.telemetry.shutdown()


def test_otel_agent_chat_tool_tree_has_names_kinds_parents_and_required_attributes(pipe: Pipeline) -> None:
    with pipe.spans.invoke_agent_span("planner", conversation_id="conv-1"):
        with pipe.spans.chat_span(provider="openai", model="gpt-4o", max_tokens=100, temperature=0.2) as chat:
            chat.set_response(id="chatcmpl-1", model="gpt-4o-2024-08-06", finish_reasons=["stop"])
            chat.set_usage(TokenUsage(input_tokens=120, output_tokens=30, cache_read_tokens=100))
        with pipe.spans.execute_tool_span("get_weather", call_id="call_1"):
            pass
    spans = pipe.finished()
    agent, chat_span, tool = (
        spans["invoke_agent planner"],
        spans["chat gpt-4o"],
        spans["execute_tool get_weather"],
    )

    assert agent.kind is SpanKind.INTERNAL and agent.parent is None
    assert chat_span.kind is SpanKind.CLIENT and tool.kind is SpanKind.INTERNAL
    for child in (chat_span, tool):
        assert child.parent is not None and child.parent.span_id == agent.context.span_id
        assert child.context.trace_id == agent.context.trace_id

    assert dict(chat_span.attributes or {}) == {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
        sc.GEN_AI_REQUEST_MAX_TOKENS: 100,
        sc.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        sc.GEN_AI_AGENT_NAME: "planner",
        sc.GEN_AI_RESPONSE_ID: "chatcmpl-1",
        sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 120,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 30,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 100,
    }
    assert dict(tool.attributes or {}) == {
        sc.GEN_AI_OPERATION_NAME: "execute_tool",
        sc.GEN_AI_TOOL_NAME: "get_weather",
        sc.GEN_AI_TOOL_CALL_ID: "call_1",
        sc.GEN_AI_TOOL_TYPE: "function",
        sc.GEN_AI_AGENT_NAME: "planner",
    }
    assert agent.attributes is not None and agent.attributes[sc.GEN_AI_CONVERSATION_ID] == "conv-1"
    for span in (agent, chat_span, tool):
        op = (span.attributes or {})[sc.GEN_AI_OPERATION_NAME]
        assert REQUIRED[str(op)] <= set(span.attributes or {})


def test_otel_every_helper_names_and_kinds_its_span(pipe: Pipeline) -> None:
    s = pipe.spans
    with s.embeddings_span(provider="openai", model="text-embedding-3-small"):
        pass
    with s.retrieval_span("kb-docs", top_k=5):
        pass
    with s.invoke_agent_span("remote-helper", remote=True, agent_id="agt_1", provider="fleetplane"):
        pass
    with s.invoke_workflow_span("triage"):
        pass
    with s.chat_span(provider="anthropic", model="claude-x", operation=sc.Op.TEXT_COMPLETION):
        pass
    with s.chat_span(provider="openai", model=None):
        pass
    spans = pipe.finished()
    expected = {
        "embeddings text-embedding-3-small": (SpanKind.CLIENT, "embeddings"),
        "retrieval kb-docs": (SpanKind.CLIENT, "retrieval"),
        "invoke_agent remote-helper": (SpanKind.CLIENT, "invoke_agent"),
        "invoke_workflow triage": (SpanKind.INTERNAL, "invoke_workflow"),
        "text_completion claude-x": (SpanKind.CLIENT, "text_completion"),
        "chat": (SpanKind.CLIENT, "chat"),
    }
    assert set(spans) == set(expected)
    for name, (kind, op) in expected.items():
        assert spans[name].kind is kind
        assert (spans[name].attributes or {})[sc.GEN_AI_OPERATION_NAME] == op
    assert (spans["retrieval kb-docs"].attributes or {})[sc.GEN_AI_DATA_SOURCE_ID] == "kb-docs"
    assert (spans["retrieval kb-docs"].attributes or {})["gen_ai.request.top_k"] == 5
    assert (spans["invoke_workflow triage"].attributes or {})[sc.GEN_AI_WORKFLOW_NAME] == "triage"
    remote = spans["invoke_agent remote-helper"].attributes or {}
    assert remote[sc.GEN_AI_AGENT_ID] == "agt_1" and remote[sc.GEN_AI_PROVIDER_NAME] == "fleetplane"


def test_otel_mcp_spans_client_and_server(pipe: Pipeline) -> None:
    with pipe.spans.mcp_span(
        "tools/call", "get_weather", session_id="s-1", protocol_version="2025-06-18", request_id=7
    ) as call:
        call.record_tool_result({"isError": True}, is_error=True)
    with pipe.spans.mcp_span("prompts/get", "summarize", server=True):
        pass
    with pipe.spans.mcp_span("initialize", server=True) as init:
        init.jsonrpc_error(-32603, "Internal error")
    spans = pipe.finished()

    call_span = spans["tools/call get_weather"]
    assert call_span.kind is SpanKind.CLIENT
    assert dict(call_span.attributes or {}) == {
        sc.MCP_METHOD_NAME: "tools/call",
        sc.MCP_SESSION_ID: "s-1",
        sc.MCP_PROTOCOL_VERSION: "2025-06-18",
        sc.JSONRPC_REQUEST_ID: "7",
        sc.GEN_AI_OPERATION_NAME: "execute_tool",
        sc.GEN_AI_TOOL_NAME: "get_weather",
        sc.ERROR_TYPE: "tool_error",
    }
    assert call_span.status.status_code is StatusCode.ERROR
    prompt = spans["prompts/get summarize"]
    assert prompt.kind is SpanKind.SERVER and (prompt.attributes or {})[sc.GEN_AI_PROMPT_NAME] == "summarize"
    init_attrs = spans["initialize"].attributes or {}
    assert init_attrs[sc.RPC_RESPONSE_STATUS_CODE] == "-32603" and init_attrs[sc.ERROR_TYPE] == "-32603"
    assert [p.attributes[sc.MCP_METHOD_NAME] for p in pipe.points("mcp.client.operation.duration")] == [
        "tools/call"
    ]
    assert len(pipe.points("mcp.server.operation.duration")) == 2


def test_otel_exceptions_become_error_type_without_their_message(pipe: Pipeline) -> None:
    with pytest.raises(TimeoutError), pipe.spans.chat_span(provider="openai", model="gpt-4o"):
        raise TimeoutError("prompt said: my secret plan")
    span = pipe.finished()["chat gpt-4o"]
    assert (span.attributes or {})[sc.ERROR_TYPE] == "TimeoutError"
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "TimeoutError"
    [event] = span.events
    assert dict(event.attributes or {}) == {sc.EXCEPTION_TYPE: "TimeoutError"}
    [point] = pipe.points("gen_ai.client.operation.duration")
    assert point.attributes[sc.ERROR_TYPE] == "TimeoutError"


def test_otel_async_spans_nest_across_awaits(pipe: Pipeline) -> None:
    async def run() -> None:
        async with pipe.spans.invoke_agent_span("async-agent"):
            await asyncio.sleep(0)
            async with pipe.spans.execute_tool_span("lookup") as tool:
                await asyncio.sleep(0)
                tool.tool_error()

    asyncio.run(run())
    spans = pipe.finished()
    tool = spans["execute_tool lookup"]
    assert (
        tool.parent is not None and tool.parent.span_id == spans["invoke_agent async-agent"].context.span_id
    )
    assert (tool.attributes or {})[sc.ERROR_TYPE] == sc.ERROR_TOOL
    [calls] = pipe.points("fleetplane.tool.calls")
    assert calls.value == 1 and calls.attributes[sc.ERROR_TYPE] == "tool_error"


def test_otel_gateway_and_tenant_attributes_with_secrets_scrubbed(pipe: Pipeline) -> None:
    with pipe.spans.chat_span(
        provider="openai", model="gpt-4o", attributes={"authorization": "Bearer abc"}
    ) as chat:
        chat.set_tenant(organization="acme", team="search", user="u-1", customer="c-9", key="fp-" + "x" * 40)
        chat.set_gateway(
            deployment="openai-east",
            fallback_hops=1,
            cache_hit=False,
            quota_decision="admit",
            breaker_decision="closed",
        )
        chat.set("note", "leaked sk-" + "A" * 30)
        chat.set_cost(0.0125)
    attrs = dict(pipe.finished()["chat gpt-4o"].attributes or {})
    assert attrs[sc.FP_DEPLOYMENT] == "openai-east" and attrs[sc.FP_FALLBACK_HOPS] == 1
    assert attrs[sc.FP_CACHE_HIT] is False and attrs[sc.FP_QUOTA_DECISION] == "admit"
    assert attrs[sc.FP_BREAKER_DECISION] == "closed" and attrs[sc.FP_TEAM] == "search"
    assert attrs[sc.FP_KEY] == "[REDACTED]" and attrs["authorization"] == "[REDACTED]"
    assert attrs["note"] == "leaked [REDACTED]"
    assert attrs[sc.FP_COST_USD] == 0.0125
    [cost] = pipe.points("fleetplane.cost.usd")
    assert cost.value == 0.0125
    assert cost.attributes == {
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
        sc.FP_ORGANIZATION: "acme",
        sc.FP_TEAM: "search",
    }


def test_otel_extra_attributes_past_the_budget_are_counted_and_never_evict_required_ones(
    pipe: Pipeline,
) -> None:
    extra = {f"app.attr{i}": i for i in range(200)}
    with pipe.spans.chat_span(provider="openai", model="gpt-4o", attributes=extra):
        pass
    attrs = dict(pipe.finished()["chat gpt-4o"].attributes or {})
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat" and attrs[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert sum(key.startswith("app.") for key in attrs) == MAX_EXTRA_ATTRIBUTES
    assert attrs[sc.FP_ATTRIBUTES_DROPPED] == 200 - MAX_EXTRA_ATTRIBUTES
    assert len(attrs) <= 128


def test_otel_streaming_timings_usage_and_fleetplane_metrics_with_an_injected_clock() -> None:
    clock = ManualClock()
    pipe = Pipeline(clock=clock)
    with pipe.spans.chat_span(provider="openai", model="gpt-4o", stream=True, context_window=1000) as chat:
        clock.advance(0.3)
        chat.record_chunk()
        clock.advance(0.05)
        chat.record_chunk()
        clock.advance(0.05)
        chat.record_chunk()
        chat.set_usage(TokenUsage(input_tokens=800, output_tokens=2))
        chat.set_response(finish_reasons=["length"])
    attrs = dict(pipe.finished()["chat gpt-4o"].attributes or {})
    assert attrs[sc.FP_CONTEXT_UTILIZATION] == 0.8 and attrs[sc.GEN_AI_REQUEST_STREAM] is True
    [ttfc] = pipe.points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc.sum == pytest.approx(0.3)
    [per_chunk] = pipe.points("gen_ai.client.operation.time_per_output_chunk")
    assert per_chunk.count == 2 and per_chunk.sum == pytest.approx(0.1)
    [duration] = pipe.points("gen_ai.client.operation.duration")
    assert duration.sum == pytest.approx(0.4)
    usage = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in pipe.points("gen_ai.client.token.usage")}
    assert usage == {"input": 800, "output": 2}
    [utilization] = pipe.points("fleetplane.context.utilization")
    assert utilization.sum == pytest.approx(0.8)
    assert [p.value for p in pipe.points("fleetplane.finish_reason.length")] == [1]
    pipe.telemetry.shutdown()


def test_otel_gateway_decision_counters(pipe: Pipeline) -> None:
    m = pipe.telemetry.metrics
    m.record_cache_lookup(True, request_model="gpt-4o", tenant={sc.FP_TEAM: "search", sc.FP_USER: "u-1"})
    m.record_fallback("429", deployment="openai-east", request_model="gpt-4o")
    m.record_quota_denial("tokens_per_minute", scope="team", tenant={sc.FP_TEAM: "search"})
    m.record_breaker_trip("cost_velocity", breaker="loop-guard")
    m.record_server(
        operation="chat", provider="openai", request_duration_s=1.0, time_to_first_token_s=0.2,
        time_per_output_token_s=0.02,
    )  # fmt: skip
    [cache] = pipe.points("fleetplane.cache.lookups")
    assert cache.attributes == {
        sc.FP_CACHE_HIT: True,
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
        sc.FP_TEAM: "search",
    }
    [fallback] = pipe.points("fleetplane.fallbacks")
    assert (
        fallback.attributes[sc.FP_REASON] == "429" and fallback.attributes[sc.FP_DEPLOYMENT] == "openai-east"
    )
    [denial] = pipe.points("fleetplane.quota.denials")
    assert denial.attributes == {
        sc.FP_REASON: "tokens_per_minute",
        sc.FP_QUOTA_SCOPE: "team",
        sc.FP_TEAM: "search",
    }
    [trip] = pipe.points("fleetplane.breaker.trips")
    assert trip.attributes == {sc.FP_REASON: "cost_velocity", sc.FP_BREAKER_NAME: "loop-guard"}
    for name in ("gen_ai.server.request.duration", "gen_ai.server.time_to_first_token"):
        assert len(pipe.points(name)) == 1


def test_otel_secrets_in_helper_arguments_and_names_are_scrubbed(pipe: Pipeline) -> None:
    key = "sk-proj-" + "Q7" * 16
    with pipe.spans.invoke_agent_span(f"agent {key}", conversation_id=key):
        pass
    [span] = pipe.finished().values()
    assert key not in span.name and span.name == "invoke_agent agent [REDACTED]"
    assert (span.attributes or {})[sc.GEN_AI_CONVERSATION_ID] == "[REDACTED]"


def test_otel_error_descriptions_stay_out_of_spans_unless_content_is_captured(pipe: Pipeline) -> None:
    with pipe.spans.chat_span(provider="openai", model="gpt-4o") as chat:
        chat.set_error("400", "Invalid 'messages[0].content': my private words")
    span = pipe.finished()["chat gpt-4o"]
    assert span.status.description == "400" and (span.attributes or {})[sc.ERROR_TYPE] == "400"

    captured = Pipeline(environ={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"})
    with captured.spans.chat_span(provider="openai", model="gpt-4o") as chat:
        chat.set_error("400", "Invalid value from jane@example.com")
    span = captured.finished()["chat gpt-4o"]
    assert span.status.description == "Invalid value from [EMAIL]"
    captured.telemetry.shutdown()
