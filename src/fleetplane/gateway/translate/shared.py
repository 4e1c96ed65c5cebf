"""What every translation direction shares: the result and error types, the stop-reason and id mappings,
and usage read into the `TokenUsage` the gateway charges from (whose `input_tokens` includes cached
input, the GenAI conventions' meaning)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from fleetplane.telemetry.cost import TokenUsage

Body = dict[str, Any]


class TranslationError(Exception):
    """A request asks for something the target API cannot honour without changing the result.

    The gateway answers it with a 400 in the client's own API shape, naming `param`.
    """

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class Translated:
    """A translated request body and the client parameters that were dropped or not honoured as given.

    `dropped` feeds the `x-fleetplane-dropped-params` header; each name appears once, in first-seen order.
    """

    body: Body
    dropped: list[str] = field(default_factory=list)

    def drop(self, name: str) -> None:
        if name not in self.dropped:
            self.dropped.append(name)


# Anthropic stop_reason -> OpenAI finish_reason. pause_turn (a server tool paused the turn) ends this
# response normally; running out of context window is a length stop to an OpenAI client.
FINISH_REASON = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}

# OpenAI finish_reason -> Anthropic stop_reason. OpenAI does not say whether a stop sequence matched, so
# "stop" is always end_turn.
STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_ANTHROPIC_ID_PREFIX = "msg_"
_OPENAI_ID_PREFIX = "chatcmpl-"


def openai_id(anthropic_id: Any) -> str:
    """`msg_X` -> `chatcmpl-X`, the inverse of `anthropic_id`, so a response keeps one identity."""
    if not isinstance(anthropic_id, str) or not anthropic_id:
        return _OPENAI_ID_PREFIX + uuid.uuid4().hex
    return _OPENAI_ID_PREFIX + anthropic_id.removeprefix(_ANTHROPIC_ID_PREFIX)


def anthropic_id(openai_id: Any) -> str:
    if not isinstance(openai_id, str) or not openai_id:
        return _ANTHROPIC_ID_PREFIX + uuid.uuid4().hex
    return _ANTHROPIC_ID_PREFIX + openai_id.removeprefix(_OPENAI_ID_PREFIX)


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_anthropic(usage: Mapping[str, Any]) -> TokenUsage:
    """Anthropic's `input_tokens` leaves out cache reads and writes; `TokenUsage.input_tokens` counts them."""
    read = as_int(usage.get("cache_read_input_tokens"))
    write = as_int(usage.get("cache_creation_input_tokens"))
    return TokenUsage(
        input_tokens=as_int(usage.get("input_tokens")) + read + write,
        output_tokens=as_int(usage.get("output_tokens")),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def usage_from_openai(usage: Mapping[str, Any]) -> TokenUsage:
    prompt = usage.get("prompt_tokens_details")
    prompt = prompt if isinstance(prompt, Mapping) else {}
    completion = usage.get("completion_tokens_details")
    completion = completion if isinstance(completion, Mapping) else {}
    return TokenUsage(
        input_tokens=as_int(usage.get("prompt_tokens")),
        output_tokens=as_int(usage.get("completion_tokens")),
        cache_read_tokens=as_int(prompt.get("cached_tokens")),
        cache_write_tokens=as_int(prompt.get("cache_write_tokens")),
        reasoning_tokens=as_int(completion.get("reasoning_tokens")),
    )


def openai_usage(usage: TokenUsage) -> Body:
    details: Body = {"cached_tokens": usage.cache_read_tokens}
    if usage.cache_write_tokens:
        details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": details,
    }


def anthropic_usage(usage: TokenUsage) -> Body:
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(uncached, 0),
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def json_str(value: Any) -> str:
    return orjson.dumps(value).decode()
