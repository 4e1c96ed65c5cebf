"""Reading usage from either API's answers, and counting it when an upstream reported none."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fleetplane.telemetry import tokens
from fleetplane.telemetry.cost import TokenUsage


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def openai_usage(usage: Mapping[str, Any] | None) -> TokenUsage | None:
    if not isinstance(usage, Mapping):
        return None
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return TokenUsage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        cache_read_tokens=_int(prompt.get("cached_tokens")) if isinstance(prompt, Mapping) else 0,
        reasoning_tokens=_int(completion.get("reasoning_tokens")) if isinstance(completion, Mapping) else 0,
    )


def anthropic_usage(usage: Mapping[str, Any] | None) -> TokenUsage | None:
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


def openai_reply_text(body: Mapping[str, Any]) -> list[str]:
    """The generated text of a chat.completion (content and tool arguments), for counting."""
    out: list[str] = []
    for choice in body.get("choices") or ():
        message = choice.get("message") or {} if isinstance(choice, Mapping) else {}
        if isinstance(message.get("content"), str):
            out.append(message["content"])
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            out.append(str(fn.get("name", "")) + str(fn.get("arguments", "")))
    return out
