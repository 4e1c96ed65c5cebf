"""A non-streaming Anthropic `message`, rewritten as an OpenAI `chat.completion`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fleetplane.gateway.translate.shared import (
    FINISH_REASON,
    Body,
    json_str,
    openai_id,
    openai_usage,
    usage_from_anthropic,
)


def anthropic_response_to_openai(body: Mapping[str, Any], *, model: str, created: int | None = None) -> Body:
    """`model` is the name the client asked for; `created` defaults to now."""
    texts: list[str] = []
    calls: list[Body] = []
    for block in body.get("content") or ():
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": json_str(block.get("input") or {})},
                }
            )
        # Thinking and server-tool blocks have no place in a chat.completion; the answer they led to does.
    message: Body = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    usage = body.get("usage")
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
                "finish_reason": FINISH_REASON.get(str(body.get("stop_reason")), "stop"),
            }
        ],
        "usage": openai_usage(usage_from_anthropic(usage if isinstance(usage, Mapping) else {})),
    }
