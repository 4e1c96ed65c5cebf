"""What every translation direction shares: the result and error types, the stop-reason and id mappings,
and usage read into the `TokenUsage` the gateway charges from (whose `input_tokens` includes cached
input, the GenAI conventions' meaning)."""

from __future__ import annotations

import reprlib
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


# A token count at or past this is junk, not usage: summing a few of them must stay inside the 64-bit
# integers orjson writes and the store keeps.
MAX_TOKEN_COUNT = 2**53


def as_int(value: Any) -> int:
    """A token count as reported, or 0 when it cannot be one (not an integer, negative, absurdly large)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_TOKEN_COUNT:
        return value
    return 0


def usage_from_anthropic(usage: Any) -> TokenUsage:
    """Anthropic's `input_tokens` leaves out cache reads and writes; `TokenUsage.input_tokens` counts them.
    A `usage` that is not an object reads as no usage."""
    if not isinstance(usage, Mapping):
        return TokenUsage()
    read = as_int(usage.get("cache_read_input_tokens"))
    write = as_int(usage.get("cache_creation_input_tokens"))
    return TokenUsage(
        input_tokens=as_int(usage.get("input_tokens")) + read + write,
        output_tokens=as_int(usage.get("output_tokens")),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def usage_from_openai(usage: Any) -> TokenUsage:
    if not isinstance(usage, Mapping):
        return TokenUsage()
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


def json_or_none(value: Any) -> str | None:
    """`value` as JSON text, or None when orjson cannot write it (nested 255 levels or deeper, which an
    upstream's answer may be: orjson reads up to 1024)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return None


# orjson, which writes every upstream request, writes at most this many nested levels (it reads 1024).
_ORJSON_LEVELS = 254
# Translation moves a value at most two levels deeper than the client put it (an OpenAI tool message's
# parts become a tool_result's content), so a request within this limit always serializes; no real tool
# schema or conversation comes near it.
MAX_DEPTH = 200
# How much of a too-deep value's path an error names: enough to find the field, short enough to read.
_PATH_SEGMENTS = 6


def check_depth(body: Any, param: str = "") -> None:
    """Refuse a value that nests containers more than MAX_DEPTH levels deep (`body` itself is level 1);
    `param` is where `body` sits in the request, "" for the request itself."""
    if _depth_exceeded(body, MAX_DEPTH):
        where = (param + _deep_path(body, MAX_DEPTH)).removeprefix(".")
        raise TranslationError(f"{where or 'the body'} is nested more than {MAX_DEPTH} levels deep", where)


def too_deep(value: Any) -> bool:
    """Whether `value` nests containers more than MAX_DEPTH levels deep."""
    return _depth_exceeded(value, MAX_DEPTH)


def _depth_exceeded(value: Any, limit: int) -> bool:
    """Asks orjson to write `value` inside enough extra lists that its own limit falls at `limit`.

    That runs at C speed and costs what writing the body costs, however its containers are arranged: a
    walk in Python took seconds on 20 MB of nested lists, on the event loop. For JSON as orjson reads it,
    nesting is the only reason it can fail to write it again."""
    wrapped = value
    for _ in range(_ORJSON_LEVELS - limit):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        return True
    return False


def _deep_path(value: Any, limit: int) -> str:
    """The first `_PATH_SEGMENTS` segments (`.key`, `[i]`) of a path down to a container past `limit`.
    Only the error path runs it: it steps into the first child that is itself too deep, a few times over,
    so it costs a few writes of the body."""
    path: list[str] = []
    item = value
    while len(path) < _PATH_SEGMENTS:
        if isinstance(item, dict):
            children: Any = ((f".{key}", child) for key, child in item.items())
        elif isinstance(item, list):
            children = ((f"[{i}]", child) for i, child in enumerate(item))
        else:
            break
        for segment, child in children:
            if _depth_exceeded(child, limit - len(path) - 1):
                path.append(segment)
                item = child
                break
        else:
            break
    return "".join(path)


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = 60
_SHOWN.maxother = 60
_SHOWN.maxlevel = 3


def shown(value: Any) -> str:
    """A client's value quoted in an error message: its repr, cut short, so junk cannot bloat the error."""
    return _SHOWN.repr(value)
