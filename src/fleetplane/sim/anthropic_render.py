"""How the Anthropic Messages API looks on the wire: error bodies, rate-limit headers, message bodies and
the streaming event sequence

    message_start → (content_block_start → ping → content_block_delta* → content_block_stop)
    → message_delta (stop_reason, output usage) → message_stop
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import orjson

from fleetplane.sim.completion import ChatRequest, Choice
from fleetplane.sim.engine import Header
from fleetplane.sim.errors import SimError
from fleetplane.sim.generate import random_id
from fleetplane.sim.ratelimit import Denial, ModelLimiter
from fleetplane.sim.stream import StreamScript

_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "overloaded": "overloaded_error",
    "server": "api_error",
}
_STOP = {"end": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence", "tool_call": "tool_use"}
_LIMIT_LABEL = {
    "requests": "requests",
    "tokens": "tokens",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
}


def event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class AnthropicDialect:
    def __init__(self, request_id: str) -> None:
        self.request_id = request_id

    def render_error(self, err: SimError) -> tuple[int, dict[str, Any]]:
        body = {
            "type": "error",
            "error": {"type": _TYPES[err.kind], "message": err.message},
            "request_id": self.request_id,
        }
        return err.status, body

    def limit_headers(self, limiter: ModelLimiter) -> list[Header]:
        return limiter.anthropic_headers()

    def rate_limited(self, model: str, denial: Denial) -> SimError:
        label = _LIMIT_LABEL[denial.limit]
        message = (
            f"This request would exceed the rate limit for your organization (org-sim) of "
            f"{denial.capacity} {label} per minute for {model}. For details, refer to: "
            "https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. "
            "Please reduce the prompt length or the maximum tokens requested, or try again later."
        )
        return SimError(429, "rate_limit", message, retry_after=denial.retry_after)

    def overloaded(self, retry_after: int | None) -> SimError:
        return SimError(529, "overloaded", "Overloaded", retry_after=retry_after)

    def tool_id(self, rng: random.Random) -> str:
        return "toolu_01" + random_id(rng, 22)

    def _block(self, choice: Choice) -> dict[str, Any] | None:
        call = choice.tool_call
        if call is not None:
            return {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
        return {"type": "text", "text": choice.text} if choice.text else None

    def _message(
        self, chat: ChatRequest, content: list[Any], stop: str | None, output_tokens: int
    ) -> dict[str, Any]:
        return {
            "id": "msg_01" + uuid.uuid4().hex[:22],
            "type": "message",
            "role": "assistant",
            "model": chat.name,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": chat.input_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }

    def body(self, chat: ChatRequest, choices: list[Choice]) -> dict[str, Any]:
        choice = choices[0]
        block = self._block(choice)
        message = self._message(chat, [block] if block else [], _STOP[choice.finish], choice.output_tokens)
        message["stop_sequence"] = choice.stop_sequence
        return message

    def script(self, chat: ChatRequest, choices: list[Choice]) -> StreamScript:
        choice = choices[0]
        call = choice.tool_call
        # The real API reports a first output token in message_start; nothing when the reply is empty.
        started = self._message(chat, [], None, min(1, choice.output_tokens))
        script = StreamScript(head=[event("message_start", {"type": "message_start", "message": started})])
        if call is not None:
            block: dict[str, Any] | None = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        else:
            block = {"type": "text", "text": ""} if choice.pieces else None
        if block is not None:
            script.head.append(
                event(
                    "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
                )
            )
        script.head.append(event("ping", {"type": "ping"}))
        position = 0
        for piece, weight in zip(choice.pieces, choice.weights, strict=True):
            if call is not None:
                delta = {"type": "input_json_delta", "partial_json": piece}
            else:
                delta = {"type": "text_delta", "text": piece}
            payload = {"type": "content_block_delta", "index": 0, "delta": delta}
            script.add(event("content_block_delta", payload), weight, position)
            position += weight
        if block is not None:
            script.tail.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        script.tail.append(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": _STOP[choice.finish], "stop_sequence": choice.stop_sequence},
                    "usage": {"output_tokens": choice.output_tokens},
                },
            )
        )
        script.tail.append(event("message_stop", {"type": "message_stop"}))
        return script
