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
    too_deep,
    usage_from_openai,
)


def openai_response_to_anthropic(body: Any, *, model: str) -> Body:
    """`model` is the name the client asked for. Only the first choice is read: Anthropic has one.

    Whatever the upstream sent, this returns a well-formed message: a part that is not the expected shape
    reads as absent (a body that is not an object is an empty reply)."""
    body = _object(body)
    choices = body.get("choices")
    choice = _object(choices[0] if isinstance(choices, list) and choices else None)
    message = _object(choice.get("message"))
    content: list[Body] = []
    text = _text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    refusal = _string(message.get("refusal"))
    if refusal:
        content.append({"type": "text", "text": refusal})
    tool_calls = message.get("tool_calls")
    calls = [call for call in tool_calls if isinstance(call, Mapping)] if isinstance(tool_calls, list) else []
    if isinstance(message.get("function_call"), Mapping):
        calls.append({"function": message["function_call"]})
    for call in calls:
        function = _object(call.get("function"))
        content.append(
            {
                "type": "tool_use",
                "id": _string(call.get("id")) or tool_use_id(),
                "name": _string(function.get("name")),
                "input": tool_input(function.get("arguments")),
            }
        )
    stop_reason = STOP_REASON.get(_string(choice.get("finish_reason")), "end_turn")
    if refusal:
        stop_reason = "refusal"
    elif calls and stop_reason == "end_turn":
        # Some OpenAI-compatible servers finish a tool call with "stop"; Anthropic clients run tools on
        # tool_use only.
        stop_reason = "tool_use"
    return {
        "id": anthropic_id(body.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage(usage_from_openai(body.get("usage"))),
    }


def tool_use_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


def tool_input(arguments: Any) -> Body:
    """Arguments the model produced that are not a JSON object (truncated by a length stop, or malformed,
    or nested deeper than a response can be written) cannot become an Anthropic `input`; an empty object
    keeps the message valid."""
    if isinstance(arguments, str) and arguments.strip():
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) and not too_deep(parsed) else {}
    return {}


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_string(part.get("text")) for part in content if isinstance(part, Mapping))
    return ""
