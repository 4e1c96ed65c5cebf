"""An Anthropic Messages event stream, rewritten as OpenAI `chat.completion.chunk` SSE frames."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from fleetplane.gateway.sse import SSEEvent, encode_event
from fleetplane.gateway.translate.errors import anthropic_error_to_openai
from fleetplane.gateway.translate.shared import (
    FINISH_REASON,
    Body,
    TokenUsage,
    json_str,
    openai_id,
    openai_usage,
    usage_from_anthropic,
)

DONE = b"data: [DONE]\n\n"
# Events that carry the response; `ping` and `content_block_stop` carry nothing an OpenAI client needs.
_CONTENT_EVENTS = frozenset({"content_block_start", "content_block_delta", "message_delta", "message_stop"})
_INCOMPLETE = "the upstream stream ended before the response was complete"


class AnthropicToOpenAIStream:
    """Feed it the upstream's events in order, then call `finish()` when the upstream closes.

    After the stream, `usage` holds what the upstream reported (None if nothing), `output_chars` the length
    of the text, reasoning and tool calls it produced, `finish_reason` the OpenAI finish reason sent, and
    `error` the upstream's Anthropic error object if it sent one.
    """

    def __init__(self, *, model: str, include_usage: bool = False, created: int | None = None) -> None:
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time()) if created is None else created
        self.id = ""
        self.usage: TokenUsage | None = None
        self.output_chars = 0
        self.finish_reason: str | None = None
        self.error: Body | None = None
        # Anthropic content-block index -> position in OpenAI's tool_calls list.
        self._tool_calls: dict[int, int] = {}
        self._done = False

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self._done:
            return []
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return self._fail({"type": "api_error", "message": "the upstream sent an event that is not JSON"})
        if not isinstance(payload, dict):
            return []
        kind = payload.get("type") or event.event
        if kind == "error":
            error = payload.get("error")
            return self._fail(
                error if isinstance(error, dict) else {"type": "api_error", "message": str(error)}
            )
        if kind == "message_start":
            return self._start(payload.get("message"))
        if kind not in _CONTENT_EVENTS:
            return []
        frames = self._start(None)
        if kind == "content_block_start":
            frames += self._block_start(payload)
        elif kind == "content_block_delta":
            frames += self._block_delta(payload)
        elif kind == "message_delta":
            frames += self._message_delta(payload)
        elif kind == "message_stop":
            frames += self._complete()
        return frames

    def finish(self) -> list[bytes]:
        """The upstream closed. Without a stop reason the response is cut short, which the client must
        learn as an error rather than a clean [DONE]."""
        if self._done:
            return []
        if self.finish_reason is not None:
            return self._complete()
        return self._fail({"type": "api_error", "message": _INCOMPLETE})

    def _start(self, message: Any) -> list[bytes]:
        if self.id:
            return []
        message = message if isinstance(message, Mapping) else {}
        self.id = openai_id(message.get("id"))
        usage = message.get("usage")
        if isinstance(usage, Mapping):
            self.usage = usage_from_anthropic(usage)
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, payload: Mapping[str, Any]) -> list[bytes]:
        block = payload.get("content_block")
        if not isinstance(block, Mapping):
            return []
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return [self._text(str(block["text"]))]
        if kind != "tool_use":
            return []
        position = len(self._tool_calls)
        self._tool_calls[as_index(payload)] = position
        name = str(block.get("name", ""))
        # Anthropic streams input as deltas after an empty start; a non-empty start is the whole input.
        tool_input = block.get("input")
        arguments = json_str(tool_input) if tool_input else ""
        self.output_chars += len(name) + len(arguments)
        call = {
            "index": position,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, payload: Mapping[str, Any]) -> list[bytes]:
        delta = payload.get("delta")
        if not isinstance(delta, Mapping):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = str(delta.get("text", ""))
            return [self._text(text)] if text else []
        if kind == "input_json_delta":
            piece = str(delta.get("partial_json", ""))
            position = self._tool_calls.get(as_index(payload))
            if not piece or position is None:
                return []
            self.output_chars += len(piece)
            return [self._chunk({"tool_calls": [{"index": position, "function": {"arguments": piece}}]})]
        if kind == "thinking_delta":
            # Not forwarded (Chat Completions has no field for it), but it was generated and billed.
            self.output_chars += len(str(delta.get("thinking", "")))
        return []

    def _message_delta(self, payload: Mapping[str, Any]) -> list[bytes]:
        usage = payload.get("usage")
        if isinstance(usage, Mapping):
            self._merge_usage(usage)
        delta = payload.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, Mapping) else None
        if stop_reason is None or self.finish_reason is not None:
            return []
        self.finish_reason = FINISH_REASON.get(str(stop_reason), "stop")
        return [self._chunk({}, self.finish_reason)]

    def _merge_usage(self, usage: Mapping[str, Any]) -> None:
        """message_delta counts are running totals; fields it leaves out keep message_start's values."""
        update = usage_from_anthropic(usage)
        current = self.usage or TokenUsage()
        self.usage = TokenUsage(
            input_tokens=update.input_tokens if "input_tokens" in usage else current.input_tokens,
            output_tokens=update.output_tokens if "output_tokens" in usage else current.output_tokens,
            cache_read_tokens=(
                update.cache_read_tokens if "cache_read_input_tokens" in usage else current.cache_read_tokens
            ),
            cache_write_tokens=(
                update.cache_write_tokens
                if "cache_creation_input_tokens" in usage
                else current.cache_write_tokens
            ),
        )

    def _complete(self) -> list[bytes]:
        self._done = True
        frames: list[bytes] = []
        if self.finish_reason is None:
            self.finish_reason = "stop"
            frames.append(self._chunk({}, self.finish_reason))
        if self.include_usage and self.usage is not None:
            usage_chunk = self._envelope([])
            usage_chunk["usage"] = openai_usage(self.usage)
            frames.append(encode_event(orjson.dumps(usage_chunk)))
        frames.append(DONE)
        return frames

    def _fail(self, error: Body) -> list[bytes]:
        self._done = True
        self.error = error
        _, body = anthropic_error_to_openai(500, {"type": "error", "error": error})
        return [encode_event(orjson.dumps(body))]

    def _text(self, text: str) -> bytes:
        self.output_chars += len(text)
        return self._chunk({"content": text})

    def _chunk(self, delta: Body, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return encode_event(orjson.dumps(self._envelope([choice])))

    def _envelope(self, choices: list[Body]) -> Body:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }


def as_index(payload: Mapping[str, Any]) -> int:
    index = payload.get("index")
    return index if isinstance(index, int) else 0
