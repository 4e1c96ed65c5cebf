"""An Anthropic Messages event stream, rewritten as OpenAI `chat.completion.chunk` SSE frames."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from fleetplane.gateway.sse import SSEEvent, encode_event
from fleetplane.gateway.translate.errors import anthropic_error_to_openai, readable_error
from fleetplane.gateway.translate.response_to_openai import tool_call_id
from fleetplane.gateway.translate.shared import (
    FINISH_REASON,
    Body,
    TokenUsage,
    json_or_none,
    openai_id,
    openai_usage,
    usage_from_anthropic,
)

DONE = b"data: [DONE]\n\n"
# Events that carry the response; `ping` and `content_block_stop` carry nothing an OpenAI client needs.
_CONTENT_EVENTS = frozenset({"content_block_start", "content_block_delta", "message_delta", "message_stop"})
# The object each event cannot do without; an event without it is malformed, not merely sparse.
_REQUIRED = {
    "message_start": "message",
    "content_block_start": "content_block",
    "content_block_delta": "delta",
    "message_delta": "delta",
}


class AnthropicToOpenAIStream:
    """Feed it the upstream's events in order, then call `finish()` when the upstream closes.

    It has the gateway's stream-watcher shape: `usage` is what the upstream reported (None if nothing),
    `text()` the pieces of text, reasoning and tool calls generated (`output_chars` their length), for
    counting when usage is missing; `finished` says the upstream ended its stream properly, and `error`
    holds the upstream's Anthropic error object if it sent one. `finish_reason` is the one sent.

    No event makes it raise. An event whose structure is wrong (not an object, a `type` that is not a
    string, `message` / `content_block` / `delta` missing or not an object) is an upstream failure like an
    error event; a value of the wrong type inside it (a number for `text`, a list for `usage`) reads as
    absent.
    """

    def __init__(self, *, model: str, include_usage: bool = False, created: int | None = None) -> None:
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time()) if created is None else created
        self.id = ""
        self.usage: TokenUsage | None = None
        self.output_chars = 0
        self.finish_reason: str | None = None
        self.finished = False
        self.error: Mapping[str, Any] | None = None
        self._pieces: list[str] = []
        # Running usage totals as Anthropic reports them: message_delta overrides what message_start said.
        self._usage: Body = {}
        # Anthropic content-block index -> position in OpenAI's tool_calls list.
        self._tool_calls: dict[int, int] = {}
        self._done = False

    def text(self) -> list[str]:
        return self._pieces

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self._done:
            return []
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return self._fail({"type": "api_error", "message": "the upstream sent an event that is not JSON"})
        if not isinstance(payload, dict):
            return self._malformed("not a JSON object")
        kind = payload.get("type") or event.event
        if not isinstance(kind, str):
            return self._malformed("its type is not a string")
        if kind == "error":
            return self._fail({"type": "api_error", **readable_error(payload.get("error"))})
        required = _REQUIRED.get(kind)
        if required is not None and not isinstance(payload.get(required), Mapping):
            return self._malformed(f"{kind}.{required} is not an object")
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
        """The upstream closed. After a stop reason the response is whole even without message_stop;
        before one it was cut short: nothing is added, `finished` stays False, and the caller tells the
        client (the gateway's relay sends the error event)."""
        if self._done or self.finish_reason is None:
            return []
        return self._complete()

    def _start(self, message: Any) -> list[bytes]:
        if self.id:
            return []
        message = message if isinstance(message, Mapping) else {}
        self.id = openai_id(message.get("id"))
        usage = message.get("usage")
        if isinstance(usage, Mapping):
            self._merge_usage(usage)
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, payload: Mapping[str, Any]) -> list[bytes]:
        block = payload.get("content_block")
        if not isinstance(block, Mapping):
            return []
        kind = block.get("type")
        text = block.get("text")
        if kind == "text" and isinstance(text, str) and text:
            return [self._content(text)]
        if kind != "tool_use":
            return []
        position = len(self._tool_calls)
        self._tool_calls[as_index(payload)] = position
        name = _string(block.get("name"))
        # Anthropic streams input as deltas after an empty start; a non-empty start is the whole input.
        # One that cannot be read (not an object, or too deep to write) is absent: the deltas may follow.
        tool_input = block.get("input")
        readable = isinstance(tool_input, Mapping) and tool_input
        arguments = (json_or_none(tool_input) or "") if readable else ""
        self._count(name + arguments)
        call = {
            "index": position,
            "id": _string(block.get("id")) or tool_call_id(),
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
            text = _string(delta.get("text"))
            return [self._content(text)] if text else []
        if kind == "input_json_delta":
            piece = _string(delta.get("partial_json"))
            position = self._tool_calls.get(as_index(payload))
            if not piece or position is None:
                return []
            self._count(piece)
            return [self._chunk({"tool_calls": [{"index": position, "function": {"arguments": piece}}]})]
        if kind == "thinking_delta":
            # Not forwarded (Chat Completions has no field for it), but it was generated and billed.
            self._count(_string(delta.get("thinking")))
        return []

    def _message_delta(self, payload: Mapping[str, Any]) -> list[bytes]:
        usage = payload.get("usage")
        if isinstance(usage, Mapping):
            self._merge_usage(usage)
        delta = payload.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, Mapping) else None
        if not isinstance(stop_reason, str) or self.finish_reason is not None:
            return []
        self.finish_reason = FINISH_REASON.get(stop_reason, "stop")
        return [self._chunk({}, self.finish_reason)]

    def _merge_usage(self, usage: Mapping[str, Any]) -> None:
        self._usage.update((key, value) for key, value in usage.items() if value is not None)
        self.usage = usage_from_anthropic(self._usage)

    def _complete(self) -> list[bytes]:
        self._done = True
        self.finished = True
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

    def _malformed(self, what: str) -> list[bytes]:
        return self._fail({"type": "api_error", "message": f"the upstream sent a malformed event: {what}"})

    def _fail(self, error: Body) -> list[bytes]:
        self._done = True
        self.error = error
        _, body = anthropic_error_to_openai(500, {"type": "error", "error": error})
        return [encode_event(orjson.dumps(body))]

    def _count(self, piece: str) -> None:
        if piece:
            self._pieces.append(piece)
            self.output_chars += len(piece)

    def _content(self, text: str) -> bytes:
        self._count(text)
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
    return index if isinstance(index, int) and not isinstance(index, bool) else 0


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
