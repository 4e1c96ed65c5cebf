from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fleetplane.gateway.sse import SSEEvent, SSEParser, encode_event
from fleetplane.gateway.translate import AnthropicToOpenAIStream, TokenUsage

Event = tuple[str, dict[str, Any]]


def start(usage: dict[str, Any] | None = None) -> Event:
    message: dict[str, Any] = {
        "id": "msg_01ABC",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-5",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 5},
    }
    return ("message_start", {"type": "message_start", "message": message})


def block_start(index: int, block: dict[str, Any]) -> Event:
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def delta(index: int, body: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": body})


def text(index: int, value: str) -> Event:
    return delta(index, {"type": "text_delta", "text": value})


def args(index: int, value: str) -> Event:
    return delta(index, {"type": "input_json_delta", "partial_json": value})


def stop(index: int) -> Event:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(stop_reason: str, usage: dict[str, Any] | None = None) -> Event:
    body = {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}}
    return ("message_delta", {**body, "usage": usage or {"output_tokens": 20}})


PING: Event = ("ping", {"type": "ping"})
MESSAGE_STOP: Event = ("message_stop", {"type": "message_stop"})
TOOL = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
TEXT_AND_TOOL: list[Event] = [
    start(),
    PING,
    block_start(0, {"type": "text", "text": ""}),
    text(0, "Checking"),
    text(0, " now."),
    stop(0),
    block_start(1, TOOL),
    args(1, ""),
    args(1, '{"city": '),
    args(1, '"Paris"}'),
    stop(1),
    message_delta("tool_use"),
    MESSAGE_STOP,
]


def run(events: list[Event], *, finish: bool = True, **options: Any) -> tuple[AnthropicToOpenAIStream, bytes]:
    stream = AnthropicToOpenAIStream(model="fleet-default", created=1700000000, **options)
    frames: list[bytes] = []
    for name, payload in events:
        frames += stream.feed(SSEEvent(event=name, data=orjson.dumps(payload).decode()))
    if finish:
        frames += stream.finish()
    return stream, b"".join(frames)


def payloads(body: bytes) -> list[Any]:
    parser = SSEParser()
    events = parser.feed(body) + parser.finish()
    assert all(event.event is None for event in events)
    return [event.data if event.data == "[DONE]" else orjson.loads(event.data) for event in events]


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-01ABC",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fleet-default",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def call(index: int, **fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, **fields}]}


USAGE_CHUNK = {
    "id": "chatcmpl-01ABC",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "fleet-default",
    "choices": [],
    "usage": {
        "prompt_tokens": 15,
        "completion_tokens": 20,
        "total_tokens": 35,
        "prompt_tokens_details": {"cached_tokens": 5},
    },
}


def test_text_and_tool_call_chunks(openai_final: Callable[[bytes], ChatCompletion]) -> None:
    stream, body = run(TEXT_AND_TOOL, include_usage=True)
    produced = payloads(body)
    assert produced == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Checking"}),
        chunk({"content": " now."}),
        chunk(call(0, id="toolu_1", type="function", function={"name": "get_weather", "arguments": ""})),
        chunk(call(0, function={"arguments": '{"city": '})),
        chunk(call(0, function={"arguments": '"Paris"}'})),
        chunk({}, "tool_calls"),
        USAGE_CHUNK,
        "[DONE]",
    ]
    for item in produced[:-1]:
        ChatCompletionChunk.model_validate(item)
    final = openai_final(body)
    assert final.id == "chatcmpl-01ABC"
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.choices[0].message.content == "Checking now."
    tool_calls = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in tool_calls] == [  # type: ignore[union-attr]
        ("toolu_1", "get_weather", '{"city": "Paris"}')
    ]
    assert final.usage is not None and final.usage.prompt_tokens == 15 and final.usage.completion_tokens == 20
    # TokenUsage counts cached input inside input_tokens, as OpenAI's prompt_tokens does.
    assert stream.usage == TokenUsage(input_tokens=15, output_tokens=20, cache_read_tokens=5)
    assert stream.text() == ["Checking", " now.", "get_weather", '{"city": ', '"Paris"}']
    assert stream.output_chars == len("Checking now.") + len("get_weather") + len('{"city": "Paris"}')
    assert (stream.finished, stream.error) == (True, None)
    assert stream.finish_reason == "tool_calls"


def test_without_include_usage_there_is_no_usage_chunk() -> None:
    stream, body = run(TEXT_AND_TOOL)
    assert payloads(body)[-2:] == [chunk({}, "tool_calls"), "[DONE]"]
    assert stream.usage is not None


def test_parallel_tool_calls_get_their_own_indexes(openai_final: Callable[[bytes], ChatCompletion]) -> None:
    events = [
        start(),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "Two cities."}),
        delta(0, {"type": "signature_delta", "signature": "sig"}),
        stop(0),
        block_start(1, TOOL),
        args(1, '{"city": "Paris"}'),
        stop(1),
        block_start(2, {**TOOL, "id": "toolu_2"}),
        args(2, '{"city": "Rome"}'),
        stop(2),
        message_delta("tool_use"),
        MESSAGE_STOP,
    ]
    stream, body = run(events)
    assert payloads(body)[1:5] == [
        chunk(call(0, id="toolu_1", type="function", function={"name": "get_weather", "arguments": ""})),
        chunk(call(0, function={"arguments": '{"city": "Paris"}'})),
        chunk(call(1, id="toolu_2", type="function", function={"name": "get_weather", "arguments": ""})),
        chunk(call(1, function={"arguments": '{"city": "Rome"}'})),
    ]
    tool_calls = openai_final(body).choices[0].message.tool_calls or []
    assert [c.function.arguments for c in tool_calls] == ['{"city": "Paris"}', '{"city": "Rome"}']  # type: ignore[union-attr]
    assert stream.output_chars == len("Two cities.") + 2 * len("get_weather") + len(
        '{"city": "Paris"}{"city": "Rome"}'
    )


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ],
)
def test_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    events = [
        start(),
        block_start(0, {"type": "text", "text": "Hi"}),
        stop(0),
        message_delta(stop_reason),
        MESSAGE_STOP,
    ]
    _, body = run(events)
    assert payloads(body) == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hi"}),
        chunk({}, finish_reason),
        "[DONE]",
    ]


def test_message_delta_usage_totals_override_message_start() -> None:
    events = [
        start({"input_tokens": 0, "output_tokens": 0}),
        message_delta("end_turn", {"input_tokens": 50, "output_tokens": 7, "cache_creation_input_tokens": 3}),
        MESSAGE_STOP,
    ]
    stream, body = run(events, include_usage=True)
    assert stream.usage == TokenUsage(input_tokens=53, output_tokens=7, cache_write_tokens=3)
    assert payloads(body)[-2]["usage"] == {
        "prompt_tokens": 53,
        "completion_tokens": 7,
        "total_tokens": 60,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 3},
    }


def test_upstream_error_event_becomes_an_openai_error_payload(
    openai_final: Callable[[bytes], ChatCompletion],
) -> None:
    error = ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    stream, body = run(
        [start(), block_start(0, {"type": "text", "text": ""}), text(0, "Hel"), error, text(0, "lo")]
    )
    assert payloads(body) == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        {
            "error": {
                "message": "Overloaded",
                "type": "service_unavailable",
                "param": None,
                "code": "overloaded",
            }
        },
    ]
    assert stream.error == {"type": "overloaded_error", "message": "Overloaded"}
    assert not stream.finished
    with pytest.raises(openai.APIError, match="Overloaded"):
        openai_final(body)


def test_upstream_closing_after_the_stop_reason_still_completes() -> None:
    stream, body = run([*TEXT_AND_TOOL[:-1]], include_usage=True)
    assert payloads(body)[-3:] == [chunk({}, "tool_calls"), USAGE_CHUNK, "[DONE]"]
    assert stream.finished


def test_message_stop_without_message_delta_finishes_with_stop() -> None:
    _, body = run([start(), MESSAGE_STOP])
    assert payloads(body) == [chunk({"role": "assistant", "content": ""}), chunk({}, "stop"), "[DONE]"]


@pytest.mark.parametrize(
    "events", [[], [start(), block_start(0, {"type": "text", "text": ""}), text(0, "Hel")]]
)
def test_upstream_closing_early_adds_nothing_and_is_not_finished(events: list[Event]) -> None:
    stream, _ = run(events, finish=False)
    assert stream.finish() == []
    assert (stream.finished, stream.error) == (False, None)
    assert stream.feed(SSEEvent(event="message_stop", data="{}")) != []


def test_non_json_event_is_an_error() -> None:
    stream = AnthropicToOpenAIStream(model="m", created=1)
    assert stream.feed(SSEEvent(event="message_start", data="{oops")) == [
        encode_event(
            b'{"error":{"message":"the upstream sent an event that is not JSON",'
            b'"type":"server_error","param":null,"code":null}}'
        )
    ]


def test_events_before_message_start_and_unknown_events_produce_nothing() -> None:
    stream = AnthropicToOpenAIStream(model="m", created=1)
    assert stream.feed(SSEEvent(event="ping", data='{"type": "ping"}')) == []
    assert stream.feed(SSEEvent(event="future_event", data='{"type": "future_event"}')) == []
    assert stream.id == ""


def test_bytes_split_anywhere_reach_the_sdk_intact(openai_final: Callable[[bytes], ChatCompletion]) -> None:
    upstream = b"".join(encode_event(orjson.dumps(payload), name) for name, payload in TEXT_AND_TOOL)
    for size in (1, 7, 64):
        parser = SSEParser()
        stream = AnthropicToOpenAIStream(model="fleet-default", include_usage=True, created=1700000000)
        frames: list[bytes] = []
        for offset in range(0, len(upstream), size):
            for event in parser.feed(upstream[offset : offset + size]):
                frames += stream.feed(event)
        for event in parser.finish():
            frames += stream.feed(event)
        frames += stream.finish()
        assert b"".join(frames) == run(TEXT_AND_TOOL, include_usage=True)[1]
    assert openai_final(b"".join(frames)).choices[0].message.content == "Checking now."
