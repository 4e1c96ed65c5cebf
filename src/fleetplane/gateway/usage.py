"""Reading usage from either API's answers, and counting it when an upstream reported none.

Everything here reads upstream answers, which may be any JSON at all: a field of the wrong shape reads
as absent, and nothing raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from fleetplane.telemetry import tokens
from fleetplane.telemetry.cost import TokenUsage

# A token count at or past this is junk, not usage: a sum of a few must stay inside the 64-bit integers
# the store and orjson keep (the translators' `as_int` uses the same bound).
_MAX_COUNT = 2**53


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < _MAX_COUNT:
        return value
    return 0


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def openai_usage(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, Mapping):
        return None
    prompt = _object(usage.get("prompt_tokens_details"))
    completion = _object(usage.get("completion_tokens_details"))
    return TokenUsage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        cache_read_tokens=_int(prompt.get("cached_tokens")),
        reasoning_tokens=_int(completion.get("reasoning_tokens")),
    )


def anthropic_usage(usage: Any) -> TokenUsage | None:
    """Anthropic's `input_tokens` excludes cache reads and writes; ours includes them."""
    if not isinstance(usage, Mapping):
        return None
    read = _int(usage.get("cache_read_input_tokens"))
    write = _int(usage.get("cache_creation_input_tokens"))
    return TokenUsage(
        input_tokens=_int(usage.get("input_tokens")) + read + write,
        output_tokens=_int(usage.get("output_tokens")),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def counted_input(operation: str, body: Mapping[str, Any]) -> int:
    if operation == "messages":
        return tokens.count_anthropic_messages(body)
    if operation == "embeddings":
        return tokens.count_embedding_input(body.get("input"))
    return tokens.count_openai_chat(body)


def counted_output(pieces: Iterable[str]) -> int:
    return tokens.count_text("".join(pieces))


def openai_reply_text(body: Any) -> list[str]:
    """The generated text of a chat.completion (content, refusal, tool names and arguments), for counting."""
    out: list[str] = []
    for choice in _list(_object(body).get("choices")):
        message = _object(_object(choice).get("message"))
        for key in ("content", "refusal"):
            if isinstance(message.get(key), str):
                out.append(message[key])
        for call in _list(message.get("tool_calls")):
            function = _object(_object(call).get("function"))
            out.append(_string(function.get("name")) + _string(function.get("arguments")))
    return [piece for piece in out if piece]


def anthropic_reply_text(body: Any) -> list[str]:
    """The generated text of an Anthropic message (text, thinking, tool names and JSON inputs), for
    counting. Thinking is generated and billed as output, as the stream watchers count it."""
    out: list[str] = []
    for block in _list(_object(body).get("content")):
        block = _object(block)
        kind = block.get("type")
        if kind == "text":
            out.append(_string(block.get("text")))
        elif kind == "thinking":
            out.append(_string(block.get("thinking")))
        elif kind == "tool_use":
            out.append(_string(block.get("name")) + _json(block.get("input")))
    return [piece for piece in out if piece]


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _json(value: Any) -> str:
    # An input nested deeper than orjson writes (it reads deeper) is counted as nothing, not raised on.
    try:
        return orjson.dumps(value).decode() if value is not None else ""
    except orjson.JSONEncodeError:
        return ""
