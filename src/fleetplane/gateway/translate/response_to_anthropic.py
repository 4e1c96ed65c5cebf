"""A non-streaming OpenAI `chat.completion`, rewritten as an Anthropic `message`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from fleetplane.gateway.translate.shared import (
    STOP_REASON,
    Body,
    anthropic_id,
    anthropic_usage,
    usage_from_openai,
)


def openai_response_to_anthropic(body: Mapping[str, Any], *, model: str) -> Body:
    """`model` is the name the client asked for. Only the first choice is read: Anthropic has one."""
    choices = body.get("choices") or ()
    choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    message = choice.get("message")
    message = message if isinstance(message, Mapping) else {}
    content: list[Body] = []
    text = _text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    calls = [call for call in message.get("tool_calls") or () if isinstance(call, Mapping)]
    if isinstance(message.get("function_call"), Mapping):
        calls.append({"function": message["function_call"]})
    for call in calls:
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or tool_use_id(),
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    stop_reason = STOP_REASON.get(str(choice.get("finish_reason")), "end_turn")
    if refusal:
        stop_reason = "refusal"
    elif calls and stop_reason == "end_turn":
        # Some OpenAI-compatible servers finish a tool call with "stop"; Anthropic clients run tools on
        # tool_use only.
        stop_reason = "tool_use"
    usage = body.get("usage")
    return {
        "id": anthropic_id(body.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage(usage_from_openai(usage if isinstance(usage, Mapping) else {})),
    }


def tool_use_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


def tool_input(arguments: Any) -> Body:
    """Arguments the model produced that are not a JSON object (truncated by a length stop, or malformed)
    cannot become an Anthropic `input`; an empty object keeps the message valid."""
    if isinstance(arguments, str) and arguments.strip():
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""
