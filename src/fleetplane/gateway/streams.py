"""Same-API streams passed through event by event, watching what flows by.

Each watcher returns the bytes to send the client for every upstream event and keeps what the gateway
needs afterwards: the usage the upstream reported, the generated text (to count tokens when it reported
none), and an error event if one arrived. The cross-API translators in `translate/` have the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from fleetplane.gateway.sse import SSEEvent
from fleetplane.gateway.usage import anthropic_usage, openai_usage
from fleetplane.telemetry.cost import TokenUsage


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
        self._text: list[str] = []

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if data == "[DONE]":
            self.finished = True
            return [b"data: [DONE]\n\n"]
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return [b"data: " + data.encode() + b"\n\n"]
        if not isinstance(chunk, dict):
            return [b"data: " + data.encode() + b"\n\n"]
        if "error" in chunk:
            self.error = (
                chunk["error"] if isinstance(chunk["error"], Mapping) else {"message": str(chunk["error"])}
            )
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                self._text.append(content)
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                self._text.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
        usage = chunk.get("usage")
        if usage:
            self.usage = openai_usage(usage)
            if not self.include_usage:
                # The gateway forced include_usage upstream to charge the stream; the client did not ask.
                if not chunk.get("choices"):
                    return []
                chunk.pop("usage")
                return [b"data: " + orjson.dumps(chunk) + b"\n\n"]
        return [b"data: " + data.encode() + b"\n\n"]

    def finish(self) -> list[bytes]:
        return []

    def text(self) -> list[str]:
        return self._text


class AnthropicPassthrough:
    def __init__(self) -> None:
        self.usage: TokenUsage | None = None
        self.error: Mapping[str, Any] | None = None
        self.finished = False
        self._text: list[str] = []
        self._input: Mapping[str, Any] = {}

    def feed(self, event: SSEEvent) -> list[bytes]:
        out = f"event: {event.event}\ndata: {event.data}\n\n" if event.event else f"data: {event.data}\n\n"
        kind = event.event
        if kind in ("content_block_delta", "message_start", "message_delta", "error"):
            try:
                payload = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                return [out.encode()]
            self._observe(kind, payload)
        elif kind == "message_stop":
            self.finished = True
        return [out.encode()]

    def _observe(self, kind: str, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            piece = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
            if isinstance(piece, str):
                self._text.append(piece)
        elif kind == "message_start":
            self._input = (payload.get("message") or {}).get("usage") or {}
            self.usage = anthropic_usage(self._input)
        elif kind == "message_delta":
            # message_delta's usage is cumulative; input counts may only be in message_start.
            merged = {**self._input, **(payload.get("usage") or {})}
            self.usage = anthropic_usage(merged)
        elif kind == "error":
            error = payload.get("error")
            self.error = error if isinstance(error, Mapping) else {"message": str(error)}

    def finish(self) -> list[bytes]:
        return []

    def text(self) -> list[str]:
        return self._text
