"""Same-API streams passed through event by event, watching what flows by.

Each watcher returns the bytes to send the client for every upstream event and keeps what the gateway
needs afterwards: the usage the upstream reported, the generated text (to count tokens when it reported
none), and an error event if one arrived. The cross-API translators in `translate/` have the same shape.

An upstream may send anything in an event. A passthrough forwards it as it came and never raises: what it
cannot read (not JSON, a list, `choices` that is not a list, a `usage` that is not an object) it simply
does not watch, and it keeps whatever else it can read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from fleetplane.gateway.sse import SSEEvent, encode_event
from fleetplane.gateway.translate.errors import readable_error
from fleetplane.gateway.usage import anthropic_usage, openai_usage
from fleetplane.telemetry.cost import TokenUsage

_DONE = b"data: [DONE]\n\n"
# Anthropic events whose data the watcher reads; the rest pass by unparsed.
_WATCHED = frozenset({"content_block_delta", "message_start", "message_delta", "error"})


class StreamWatcher(Protocol):
    usage: TokenUsage | None
    error: Mapping[str, Any] | None
    finished: bool  # the upstream ended its stream properly

    def feed(self, event: SSEEvent) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...

    def text(self) -> list[str]: ...


class OpenAIPassthrough:
    def __init__(self, *, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage: TokenUsage | None = None
        self.error: Mapping[str, Any] | None = None
        self.finished = False
        self.finish_reason: str | None = None
        self._text: list[str] = []

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if data.strip() == "[DONE]":
            self.finished = True
            return [_DONE]
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return [_frame(data)]
        if not isinstance(chunk, dict):
            return [_frame(data)]
        if chunk.get("error"):
            self.error = readable_error(chunk["error"])
        self._watch(chunk.get("choices"))
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.usage = openai_usage(usage)
        if usage and not self.include_usage:
            # The gateway forced include_usage upstream to charge the stream; the client did not ask.
            if not chunk.get("choices"):
                return []
            chunk.pop("usage")
            try:
                return [b"data: " + orjson.dumps(chunk) + b"\n\n"]
            except orjson.JSONEncodeError:
                # Nested deeper than orjson writes (it reads deeper): the chunk goes out as it came.
                pass
        return [_frame(data)]

    def _watch(self, choices: Any) -> None:
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, Mapping) and isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta") if isinstance(choice, Mapping) else None
            if not isinstance(delta, Mapping):
                continue
            content = delta.get("content")
            if isinstance(content, str):
                self._text.append(content)
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, Mapping) else None
                if isinstance(function, Mapping):
                    self._text.append(_string(function.get("name")) + _string(function.get("arguments")))

    def finish(self) -> list[bytes]:
        return []

    def text(self) -> list[str]:
        return self._text


class AnthropicPassthrough:
    def __init__(self) -> None:
        self.usage: TokenUsage | None = None
        self.error: Mapping[str, Any] | None = None
        self.finished = False
        self.finish_reason: str | None = None  # Anthropic's stop_reason
        self._text: list[str] = []
        self._input: Mapping[str, Any] = {}

    def feed(self, event: SSEEvent) -> list[bytes]:
        kind = event.event
        if kind is None or kind in _WATCHED:
            try:
                payload = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                payload = None
            if isinstance(payload, dict):
                # Anthropic names every event; a proxy that dropped the names leaves the type in the data.
                if kind is None and isinstance(payload.get("type"), str):
                    kind = payload["type"]
                self._observe(kind, payload)
        if kind == "message_stop":
            self.finished = True
        return [_frame(event.data, event.event)]

    def _observe(self, kind: str | None, payload: Mapping[str, Any]) -> None:
        if kind == "content_block_delta":
            delta = payload.get("delta")
            if isinstance(delta, Mapping):
                for key in ("text", "partial_json", "thinking"):
                    piece = delta.get(key)
                    if isinstance(piece, str) and piece:
                        self._text.append(piece)
                        break
        elif kind == "message_start":
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, Mapping) else None
            if isinstance(usage, Mapping):
                self._input = usage
                self.usage = anthropic_usage(usage)
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, Mapping) and isinstance(delta.get("stop_reason"), str):
                self.finish_reason = delta["stop_reason"]
            usage = payload.get("usage")
            if isinstance(usage, Mapping):
                # message_delta's usage is cumulative; input counts may only be in message_start.
                self.usage = anthropic_usage({**self._input, **usage})
        elif kind == "error":
            self.error = readable_error(payload.get("error"))

    def finish(self) -> list[bytes]:
        return []

    def text(self) -> list[str]:
        return self._text


def _frame(data: str, event: str | None = None) -> bytes:
    """The event as it came. The SSE parser never yields a line break in an event name or a lone surrogate
    in data, but a frame must not raise whatever it is handed."""
    if event is not None and ("\n" in event or "\r" in event):
        event = event.replace("\r", " ").replace("\n", " ")
    return encode_event(data.encode("utf-8", "replace"), event or None)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
