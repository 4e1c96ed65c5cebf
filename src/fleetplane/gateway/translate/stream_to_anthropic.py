"""An OpenAI `chat.completion.chunk` stream, rewritten as the Anthropic Messages event sequence."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from fleetplane.gateway.sse import SSEEvent, encode_event
from fleetplane.gateway.translate.errors import openai_error_to_anthropic, openai_stream_error_status
from fleetplane.gateway.translate.response_to_anthropic import tool_use_id
from fleetplane.gateway.translate.shared import (
    STOP_REASON,
    Body,
    TokenUsage,
    anthropic_id,
    anthropic_usage,
    usage_from_openai,
)

_NOT_JSON = "the upstream sent an event that is not JSON"

# Without reported usage the closing message_delta still needs an output count; this is the same
# vocabulary-free bound as fleetplane.telemetry.tokens' "estimate" (about 3 characters a token).
_CHARS_PER_TOKEN = 3


@dataclass(slots=True)
class _ToolCall:
    id: str | None = None
    name: str | None = None
    block: int | None = None
    pending: list[str] = field(default_factory=list)


class OpenAIToAnthropicStream:
    """Feed it the upstream's events in order, then call `finish()` when the upstream closes.

    OpenAI reports usage only at the end, so message_start carries `input_tokens_estimate` and the final
    message_delta the real counts. It has the gateway's stream-watcher shape: `usage` is what the upstream
    reported (None if nothing), `text()` the pieces of text and tool calls generated (`output_chars` their
    length), for counting when usage is missing; `finished` says the upstream ended its stream properly,
    and `error` holds the Anthropic error object sent if the upstream failed. `stop_reason` is the one sent.

    No event makes it raise. A chunk whose structure is wrong (not an object; `choices`, a choice, its
    `delta`, `tool_calls` or a call's `function` of the wrong type) is an upstream failure like an error
    payload; a value of the wrong type inside it (a number for `content`, a list for `usage`) reads as
    absent.
    """

    def __init__(self, *, model: str, input_tokens_estimate: int = 0) -> None:
        self.model = model
        self.input_tokens_estimate = input_tokens_estimate
        self.usage: TokenUsage | None = None
        self.output_chars = 0
        self.stop_reason: str | None = None
        self.finished = False
        self.error: Mapping[str, Any] | None = None
        self._pieces: list[str] = []
        self._started = False
        self._done = False
        self._blocks = 0
        self._open: int | None = None
        self._open_is_text = False
        self._tools: dict[int, _ToolCall] = {}
        self._finish_reason: str | None = None
        self._refused = False

    def text(self) -> list[str]:
        return self._pieces

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self._done:
            return []
        if event.data.strip() == "[DONE]":
            return self._complete()
        try:
            chunk = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return self._fail(500, {"error": {"message": _NOT_JSON}})
        if isinstance(chunk, dict) and chunk.get("error"):
            return self._fail(openai_stream_error_status(chunk), chunk)
        wrong = _malformed(chunk)
        if wrong is not None:
            return self._fail(500, {"error": {"message": f"the upstream sent a malformed chunk: {wrong}"}})
        frames = self._start(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.usage = usage_from_openai(usage)
        for choice in chunk.get("choices") or ():
            # Anthropic has one choice; n > 1 is refused on the way in.
            if choice.get("index", 0) != 0:
                continue
            frames += self._delta(choice.get("delta"))
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self._finish_reason = reason
        return frames

    def finish(self) -> list[bytes]:
        """The upstream closed. Some servers omit [DONE] after the finish reason, and the response is whole;
        without a finish reason it was cut short: nothing is added, `finished` stays False, and the caller
        tells the client (the gateway's relay sends the error event)."""
        if self._done or self._finish_reason is None:
            return []
        return self._complete()

    def _start(self, chunk: Mapping[str, Any]) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message: Body = {
            "id": anthropic_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens_estimate, "output_tokens": 0},
        }
        return [_event({"type": "message_start", "message": message})]

    def _delta(self, delta: Mapping[str, Any] | None) -> list[bytes]:
        if delta is None:
            return []
        frames: list[bytes] = []
        content = delta.get("content")
        if isinstance(content, str) and content:
            frames += self._text(content)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refused = True
            frames += self._text(refusal)
        for call in delta.get("tool_calls") or ():
            frames += self._tool_delta(call)
        return frames

    def _count(self, piece: str) -> None:
        self._pieces.append(piece)
        self.output_chars += len(piece)

    def _text(self, text: str) -> list[bytes]:
        self._count(text)
        frames = [] if self._open_is_text else self._open_block({"type": "text", "text": ""}, is_text=True)
        delta = {"type": "text_delta", "text": text}
        frames.append(_event({"type": "content_block_delta", "index": self._open, "delta": delta}))
        return frames

    def _tool_delta(self, call: Mapping[str, Any]) -> list[bytes]:
        index = call.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = 0
        state = self._tools.setdefault(index, _ToolCall())
        if isinstance(call.get("id"), str) and state.id is None:
            state.id = call["id"]
        function = call.get("function") or {}
        if isinstance(function.get("name"), str) and function["name"] and state.name is None:
            state.name = function["name"]
            self._count(function["name"])
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            self._count(piece)
            state.pending.append(piece)
        # A tool block opens once the name is known (Anthropic's content_block_start needs it); arguments
        # that came before it wait.
        if state.block is None and state.name is None:
            return []
        return self._flush_tool(state)

    def _flush_tool(self, state: _ToolCall) -> list[bytes]:
        frames: list[bytes] = []
        if state.block is None:
            block = {
                "type": "tool_use",
                "id": state.id or tool_use_id(),
                "name": state.name or "",
                "input": {},
            }
            frames += self._open_block(block, is_text=False)
            state.block = self._open
        if state.pending:
            # Servers that interleave parallel calls send arguments for an earlier block after it closed;
            # they still go to that block's index, which the Anthropic SDK's accumulator follows.
            delta = {"type": "input_json_delta", "partial_json": "".join(state.pending)}
            frames.append(_event({"type": "content_block_delta", "index": state.block, "delta": delta}))
            state.pending.clear()
        return frames

    def _open_block(self, block: Body, *, is_text: bool) -> list[bytes]:
        frames = self._close_block()
        self._open = self._blocks
        self._open_is_text = is_text
        self._blocks += 1
        frames.append(_event({"type": "content_block_start", "index": self._open, "content_block": block}))
        return frames

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        index, self._open, self._open_is_text = self._open, None, False
        return [_event({"type": "content_block_stop", "index": index})]

    def _complete(self) -> list[bytes]:
        frames = self._start({})
        for state in self._tools.values():
            if state.block is None:
                frames += self._flush_tool(state)
        frames += self._close_block()
        self._done = True
        self.finished = True
        self.stop_reason = self._stop_reason()
        delta = {"type": "message_delta", "delta": {"stop_reason": self.stop_reason, "stop_sequence": None}}
        delta["usage"] = self._final_usage()
        frames.append(_event(delta))
        frames.append(_event({"type": "message_stop"}))
        return frames

    def _stop_reason(self) -> str:
        if self._refused:
            return "refusal"
        reason = STOP_REASON.get(self._finish_reason or "stop", "end_turn")
        # Some OpenAI-compatible servers finish a tool call with "stop"; Anthropic clients run tools only
        # on tool_use.
        return "tool_use" if self._tools and reason == "end_turn" else reason

    def _final_usage(self) -> Body:
        if self.usage is None:
            return {"output_tokens": math.ceil(self.output_chars / _CHARS_PER_TOKEN)}
        return anthropic_usage(self.usage)

    def _fail(self, status: int, body: Mapping[str, Any]) -> list[bytes]:
        self._done = True
        _, error = openai_error_to_anthropic(status, body)
        self.error = error["error"]
        return [_event(error)]


def _event(payload: Body) -> bytes:
    return encode_event(orjson.dumps(payload), payload["type"])


def _malformed(chunk: Any) -> str | None:
    """What is structurally wrong with a chunk (the containers the translation walks), or None."""
    if not isinstance(chunk, dict):
        return "not a JSON object"
    choices = chunk.get("choices")
    if choices is None:
        return None
    if not isinstance(choices, list):
        return "choices is not a list"
    for i, choice in enumerate(choices):
        if not isinstance(choice, Mapping):
            return f"choices[{i}] is not an object"
        delta = choice.get("delta")
        if delta is None:
            continue
        if not isinstance(delta, Mapping):
            return f"choices[{i}].delta is not an object"
        calls = delta.get("tool_calls")
        if calls is None:
            continue
        if not isinstance(calls, list):
            return f"choices[{i}].delta.tool_calls is not a list"
        for j, call in enumerate(calls):
            if not isinstance(call, Mapping):
                return f"choices[{i}].delta.tool_calls[{j}] is not an object"
            if not isinstance(call.get("function"), Mapping | None):
                return f"choices[{i}].delta.tool_calls[{j}].function is not an object"
    return None
