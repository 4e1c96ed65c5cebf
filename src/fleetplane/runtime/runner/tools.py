"""The runner's skills as tools: their definitions and each tool call, through the fleetplane server.

The server (reached through the same bridge as the gateway, with the agent's own key) decides which
skills the agent may use and runs them under their governance (docs/skills.md, "Skills as an agent's
tools"); the runner only offers what it is given and turns each answer, success or refusal, into the
`tool` message the model reads next. Each call is an `execute_tool` span in the invocation's trace, and
its `traceparent` goes to the server, so the skill's own model calls join the same trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from opentelemetry.context import Context

from fleetplane.telemetry.propagation import inject_headers
from fleetplane.telemetry.spans import GenAISpans


class ToolsUnavailable(Exception):
    """The server did not answer the tool definitions."""


@dataclass
class Toolbox:
    tools: list[dict[str, Any]]  # OpenAI function-calling tools, as the server defines them
    unavailable: list[dict[str, Any]] = field(default_factory=list)  # declared but refused, with why
    calls: int = 0


async def fetch(client: httpx.AsyncClient, headers: dict[str, str], run_id: str) -> Toolbox:
    """The tool definitions of the skills this agent declares (their versions resolved for this run)."""
    answer = await client.get("/skills", params={"runId": run_id}, headers=headers)
    if answer.status_code != 200:
        raise ToolsUnavailable(f"the server answered {answer.status_code}: {answer.text[:500]}")
    body = answer.json()
    return Toolbox(tools=list(body.get("tools") or []), unavailable=list(body.get("unavailable") or []))


async def call(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    spans: GenAISpans,
    parent: Context,
    tool_call: dict[str, Any],
    run_id: str,
) -> dict[str, Any]:
    """Run one of the model's tool calls; the `tool` message answering it (an error is an answer too)."""
    call_id = str(tool_call.get("id") or "")
    function = tool_call.get("function") or {}
    name = str(function.get("name") or "")
    with spans.execute_tool_span(name, call_id=call_id or None, parent=parent) as span:
        span.record_tool_arguments(function.get("arguments"))
        sent = {k: v for k, v in headers.items() if k not in ("traceparent", "tracestate")}
        inject_headers(sent)  # the tool span is current: the server's work is its child
        answer = await client.post(
            f"/skills/{name}/invoke",
            json={"arguments": function.get("arguments") or "{}", "callId": call_id, "runId": run_id},
            headers=sent,
        )
        try:
            result = answer.json()
        except ValueError:
            result = {"error": {"type": "bad_answer", "message": answer.text[:500]}}
        if answer.status_code == 200 and isinstance(result, dict):
            content: Any = result.get("output")
        else:
            span.tool_error()
            content = {"status": answer.status_code, **(result if isinstance(result, dict) else {})}
        span.record_tool_result(content, is_error=answer.status_code != 200)
    return {"role": "tool", "tool_call_id": call_id, "content": orjson.dumps(content).decode()}
