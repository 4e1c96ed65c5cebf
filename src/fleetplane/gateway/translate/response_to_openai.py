"""A non-streaming Anthropic `message`, rewritten as an OpenAI `chat.completion`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from fleetplane.gateway.translate.shared import (
    FINISH_REASON,
    Body,
    json_or_none,
    openai_id,
    openai_usage,
    usage_from_anthropic,
)


def anthropic_response_to_openai(body: Any, *, model: str, created: int | None = None) -> Body:
    """`model` is the name the client asked for; `created` defaults to now.

    Whatever the upstream sent, this returns a well-formed chat.completion: a part that is not the expected
    shape reads as absent (a body that is not an object is an empty reply)."""
    body = body if isinstance(body, Mapping) else {}
    texts: list[str] = []
    calls: list[Body] = []
    content = body.get("content")
    for block in content if isinstance(content, list) else ():
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(_string(block.get("text")))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": _string(block.get("id")) or tool_call_id(),
                    "type": "function",
                    "function": {"name": _string(block.get("name")), "arguments": tool_arguments(block)},
                }
            )
        # Thinking and server-tool blocks have no place in a chat.completion; the answer they led to does.
    message: Body = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    stop_reason = body.get("stop_reason")
    return {
        "id": openai_id(body.get("id")),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_REASON.get(_string(stop_reason), "stop"),
            }
        ],
        "usage": openai_usage(usage_from_anthropic(body.get("usage"))),
    }


def tool_call_id() -> str:
    """For a tool call the upstream sent without an id: the client needs one to send the result back."""
    return "call_" + uuid.uuid4().hex[:24]


def tool_arguments(block: Mapping[str, Any]) -> str:
    """A tool_use block's `input` as OpenAI `arguments` text; an input that is not an object, or cannot be
    written (nested past orjson's limit), reads as none."""
    tool_input = block.get("input")
    text = json_or_none(tool_input) if isinstance(tool_input, Mapping) else None
    return text or "{}"


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
