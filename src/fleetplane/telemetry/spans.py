"""Spans named, kinded and attributed as the GenAI and MCP conventions say, opened by one call each:
`GenAISpans` opens them; each returns a `GenAISpan` (`span_handle`), the handle for what is learnt during
the call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry._logs import Logger
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Tracer

from fleetplane.state.clock import Clock, SystemClock
from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry import span_names
from fleetplane.telemetry.content import (
    ContentPolicy,
)
from fleetplane.telemetry.metrics import MCP_OPERATION, GenAIMetrics
from fleetplane.telemetry.span_handle import MAX_EXTRA_ATTRIBUTES, GenAISpan, current_agent, error_type_of

__all__ = ["MAX_EXTRA_ATTRIBUTES", "GenAISpan", "GenAISpans", "current_agent", "error_type_of"]


class GenAISpans:
    """Opens GenAI and MCP spans on one tracer, with one name set, content policy and metrics."""

    def __init__(
        self,
        tracer: Tracer,
        *,
        names: sc.SemconvNames = sc.CURRENT,
        content: ContentPolicy | None = None,
        metrics: GenAIMetrics | None = None,
        events: Logger | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.tracer = tracer
        self.names = names
        self.content = content or ContentPolicy()
        self.metrics = metrics
        self.events = events
        self.clock: Clock = clock or SystemClock()

    def _open(
        self, op: str, name: str, kind: SpanKind, attrs: dict[str, Any], extra: Any, parent: Context | None
    ) -> GenAISpan:
        return GenAISpan(self, op, name, kind, {sc.GEN_AI_OPERATION_NAME: op, **attrs}, extra, parent)

    def chat_span(
        self,
        *,
        provider: str,
        model: str | None,
        operation: str = sc.Op.CHAT,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stream: bool | None = None,
        conversation_id: str | None = None,
        agent_name: str | None = None,
        prompt_name: str | None = None,
        prompt_version: str | None = None,
        server_address: str | None = None,
        server_port: int | None = None,
        context_window: int | None = None,
        kind: SpanKind = SpanKind.CLIENT,
        attributes: Mapping[str, Any] | None = None,
        parent: Context | None = None,
    ) -> GenAISpan:
        attrs = {
            sc.GEN_AI_PROVIDER_NAME: provider,
            sc.GEN_AI_REQUEST_MODEL: model,
            sc.GEN_AI_REQUEST_MAX_TOKENS: max_tokens,
            sc.GEN_AI_REQUEST_TEMPERATURE: temperature,
            sc.GEN_AI_REQUEST_TOP_P: top_p,
            sc.GEN_AI_REQUEST_STREAM: stream,
            sc.GEN_AI_CONVERSATION_ID: conversation_id,
            sc.GEN_AI_AGENT_NAME: agent_name or current_agent.get(),
            sc.GEN_AI_PROMPT_NAME: prompt_name,
            sc.GEN_AI_PROMPT_VERSION: prompt_version,
            sc.SERVER_ADDRESS: server_address,
            sc.SERVER_PORT: server_port,
        }
        span = self._open(
            operation, span_names.chat_span_name(model, operation), kind, attrs, attributes, parent
        )
        span.context_window = context_window
        return span

    def embeddings_span(
        self,
        *,
        provider: str,
        model: str | None,
        agent_name: str | None = None,
        server_address: str | None = None,
        server_port: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        parent: Context | None = None,
    ) -> GenAISpan:
        attrs = {
            sc.GEN_AI_PROVIDER_NAME: provider,
            sc.GEN_AI_REQUEST_MODEL: model,
            sc.GEN_AI_AGENT_NAME: agent_name or current_agent.get(),
            sc.SERVER_ADDRESS: server_address,
            sc.SERVER_PORT: server_port,
        }
        name = span_names.embeddings_span_name(model)
        return self._open(sc.Op.EMBEDDINGS, name, SpanKind.CLIENT, attrs, attributes, parent)

    def retrieval_span(
        self,
        data_source_id: str | None,
        *,
        provider: str | None = None,
        model: str | None = None,
        top_k: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        parent: Context | None = None,
    ) -> GenAISpan:
        attrs = {
            sc.GEN_AI_DATA_SOURCE_ID: data_source_id,
            sc.GEN_AI_PROVIDER_NAME: provider,
            sc.GEN_AI_REQUEST_MODEL: model,
            self.names.retrieval_top_k: top_k,
        }
        name = span_names.retrieval_span_name(data_source_id)
        return self._open(sc.Op.RETRIEVAL, name, SpanKind.CLIENT, attrs, attributes, parent)

    def invoke_agent_span(
        self,
        name: str | None,
        *,
        remote: bool = False,
        agent_id: str | None = None,
        description: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        conversation_id: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        parent: Context | None = None,
    ) -> GenAISpan:
        """CLIENT for an agent behind a network call, INTERNAL for one running in this process."""
        keep_identity = remote or self.names.internal_agent_span_has_id_and_provider
        attrs = {
            sc.GEN_AI_AGENT_NAME: name,
            sc.GEN_AI_AGENT_ID: agent_id if keep_identity else None,
            sc.GEN_AI_PROVIDER_NAME: provider if keep_identity else None,
            sc.GEN_AI_AGENT_DESCRIPTION: description,
            sc.GEN_AI_REQUEST_MODEL: model,
            sc.GEN_AI_CONVERSATION_ID: conversation_id,
        }
        kind = SpanKind.CLIENT if remote else SpanKind.INTERNAL
        span_name = span_names.invoke_agent_span_name(name)
        return self._open(sc.Op.INVOKE_AGENT, span_name, kind, attrs, attributes, parent)

    def execute_tool_span(
        self,
        name: str,
        *,
        call_id: str | None = None,
        tool_type: str | None = sc.TOOL_TYPE_FUNCTION,
        description: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        parent: Context | None = None,
    ) -> GenAISpan:
        attrs = {
            sc.GEN_AI_TOOL_NAME: name,
            sc.GEN_AI_TOOL_CALL_ID: call_id,
            sc.GEN_AI_TOOL_TYPE: tool_type,
            sc.GEN_AI_TOOL_DESCRIPTION: description,
            sc.GEN_AI_AGENT_NAME: current_agent.get(),
        }
        span_name = span_names.execute_tool_span_name(name)
        return self._open(sc.Op.EXECUTE_TOOL, span_name, SpanKind.INTERNAL, attrs, attributes, parent)

    def invoke_workflow_span(
        self, name: str | None, *, attributes: Mapping[str, Any] | None = None, parent: Context | None = None
    ) -> GenAISpan:
        attrs = {sc.GEN_AI_WORKFLOW_NAME: name}
        span_name = span_names.invoke_workflow_span_name(name)
        return self._open(sc.Op.INVOKE_WORKFLOW, span_name, SpanKind.INTERNAL, attrs, attributes, parent)

    def mcp_span(
        self,
        method: str,
        target: str | None = None,
        *,
        server: bool = False,
        session_id: str | None = None,
        protocol_version: str | None = None,
        request_id: str | int | None = None,
        server_address: str | None = None,
        server_port: int | None = None,
        transport: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        parent: Context | None = None,
    ) -> GenAISpan:
        """`{mcp.method.name} {target}`; the target of `tools/call` is a tool, of `prompts/get` a prompt."""
        attrs: dict[str, Any] = {
            sc.MCP_METHOD_NAME: method,
            sc.MCP_SESSION_ID: session_id,
            sc.MCP_PROTOCOL_VERSION: protocol_version,
            sc.JSONRPC_REQUEST_ID: None if request_id is None else str(request_id),
            sc.SERVER_ADDRESS: server_address,
            sc.SERVER_PORT: server_port,
            sc.NETWORK_TRANSPORT: transport,
        }
        if method == sc.MCP_METHOD_TOOLS_CALL:
            # Compatible with execute_tool spans, so tool success % reads both the same way.
            attrs[sc.GEN_AI_OPERATION_NAME] = sc.Op.EXECUTE_TOOL
            attrs[sc.GEN_AI_TOOL_NAME] = target
        elif method == sc.MCP_METHOD_PROMPTS_GET:
            attrs[sc.GEN_AI_PROMPT_NAME] = target
        kind = SpanKind.SERVER if server else SpanKind.CLIENT
        return GenAISpan(
            self, MCP_OPERATION, span_names.mcp_span_name(method, target), kind, attrs, attributes, parent
        )
