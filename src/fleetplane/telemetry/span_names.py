"""Span names as the GenAI and MCP conventions build them: `{operation} {target}` (a low-cardinality
target such as the model, agent, tool or data source), or the operation alone."""

from __future__ import annotations

from fleetplane.telemetry.semconv import Op


def span_name(operation: str, target: str | None = None) -> str:
    """`{operation} {target}`, or the operation alone when there is no low-cardinality target."""
    return f"{operation} {target}" if target else operation


def chat_span_name(model: str | None, operation: str = Op.CHAT) -> str:
    return span_name(operation, model)


def embeddings_span_name(model: str | None) -> str:
    return span_name(Op.EMBEDDINGS, model)


def retrieval_span_name(data_source_id: str | None) -> str:
    return span_name(Op.RETRIEVAL, data_source_id)


def create_agent_span_name(agent_name: str | None) -> str:
    return span_name(Op.CREATE_AGENT, agent_name)


def invoke_agent_span_name(agent_name: str | None) -> str:
    return span_name(Op.INVOKE_AGENT, agent_name)


def execute_tool_span_name(tool_name: str | None) -> str:
    return span_name(Op.EXECUTE_TOOL, tool_name)


def invoke_workflow_span_name(workflow_name: str | None) -> str:
    return span_name(Op.INVOKE_WORKFLOW, workflow_name)


def mcp_span_name(method: str, target: str | None = None) -> str:
    """`{mcp.method.name} {target}`, e.g. `tools/call get_weather`; the target is a tool or prompt name."""
    return span_name(method, target)
