from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import anthropic
import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from fleetplane.gateway.sse import SSEEvent, SSEParser, encode_event
from fleetplane.gateway.translate import OpenAIToAnthropicStream, TokenUsage

EVENT = TypeAdapter(RawMessageStreamEvent)
DONE = "[DONE]"


def chunk(
    delta: dict[str, Any] | None = None, finish_reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    )
    return {
        "id": "chatcmpl-01ABC",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": choices,
        **extra,
    }


def call(index: int, *, arguments: str, id: str | None = None, name: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    item: dict[str, Any] = {"index": index, "function": function}
    if id is not None:
        item.update(id=id, type="function")
    return {"tool_calls": [item]}


USAGE = {
    "prompt_tokens": 135,
    "completion_tokens": 20,
    "total_tokens": 155,
    "prompt_tokens_details": {"cached_tokens": 30},
}
ROLE = chunk({"role": "assistant", "content": "", "refusal": None})
USAGE_CHUNK = chunk(None, usage=USAGE)


def run(items: list[Any], *, finish: bool = True) -> tuple[OpenAIToAnthropicStream, bytes]:
    stream = OpenAIToAnthropicStream(model="fleet-default", input_tokens_estimate=120)
    frames: list[bytes] = []
    for item in items:
        frames += stream.feed(SSEEvent(data=item if isinstance(item, str) else orjson.dumps(item).decode()))
    if finish:
        frames += stream.finish()
    return stream, b"".join(frames)


def events(body: bytes) -> list[dict[str, Any]]:
    parser = SSEParser()
    produced = []
    for event in parser.feed(body) + parser.finish():
        payload = orjson.loads(event.data)
        assert event.event == payload["type"]
        if payload["type"] != "error":
            EVENT.validate_python(payload)
        produced.append(payload)
    return produced


def message_start(input_tokens: int = 120) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": "msg_01ABC",
        "type": "message",
        "role": "assistant",
        "model": "fleet-default",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0},
    }
    return {"type": "message_start", "message": message}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def text(index: int, value: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": value}}


def partial(index: int, value: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "input_json_delta", "partial_json": value},
    }


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    usage = usage or {
        "input_tokens": 105,
        "output_tokens": 20,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 0,
    }
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": usage,
    }


TEXT_BLOCK = {"type": "text", "text": ""}
MESSAGE_STOP = {"type": "message_stop"}


def test_text_stream(anthropic_final: Callable[[bytes], Message]) -> None:
    items = [
        ROLE,
        chunk({"content": "Hello"}),
        chunk({"content": " world"}),
        chunk({}, "stop"),
        USAGE_CHUNK,
        DONE,
    ]
    stream, body = run(items)
    assert events(body) == [
        message_start(),
        block_start(0, TEXT_BLOCK),
        text(0, "Hello"),
        text(0, " world"),
        block_stop(0),
        message_delta("end_turn"),
        MESSAGE_STOP,
    ]
    final = anthropic_final(body)
    assert (final.id, final.content[0].text, final.stop_reason) == ("msg_01ABC", "Hello world", "end_turn")  # type: ignore[union-attr]
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (
        105,
        20,
        30,
    )
    # TokenUsage counts cached input inside input_tokens, as OpenAI's prompt_tokens does.
    assert stream.usage == TokenUsage(input_tokens=135, output_tokens=20, cache_read_tokens=30)
    assert (stream.text(), stream.output_chars) == (["Hello", " world"], len("Hello world"))
    assert (stream.stop_reason, stream.finished, stream.error) == ("end_turn", True, None)


PARALLEL_CALLS = [
    ROLE,
    chunk({"content": "Checking."}),
    chunk(call(0, id="call_a", name="get_weather", arguments="")),
    chunk(call(0, arguments='{"city":')),
    chunk(call(0, arguments=' "Paris"}')),
    chunk(call(1, id="call_b", name="get_weather", arguments='{"city": "Rome"}')),
    chunk({}, "tool_calls"),
    USAGE_CHUNK,
    DONE,
]


def test_text_then_parallel_tool_calls(anthropic_final: Callable[[bytes], Message]) -> None:
    stream, body = run(PARALLEL_CALLS)
    tool = {"type": "tool_use", "name": "get_weather", "input": {}}
    assert events(body) == [
        message_start(),
        block_start(0, TEXT_BLOCK),
        text(0, "Checking."),
        block_stop(0),
        block_start(1, {**tool, "id": "call_a"}),
        partial(1, '{"city":'),
        partial(1, ' "Paris"}'),
        block_stop(1),
        block_start(2, {**tool, "id": "call_b"}),
        partial(2, '{"city": "Rome"}'),
        block_stop(2),
        message_delta("tool_use"),
        MESSAGE_STOP,
    ]
    final = anthropic_final(body)
    assert [(b.type, getattr(b, "id", None), getattr(b, "input", None)) for b in final.content] == [
        ("text", None, None),
        ("tool_use", "call_a", {"city": "Paris"}),
        ("tool_use", "call_b", {"city": "Rome"}),
    ]
    assert final.stop_reason == "tool_use"
    assert stream.output_chars == len("Checking.") + 2 * len("get_weather") + len(
        '{"city": "Paris"}{"city": "Rome"}'
    )


def test_a_name_that_comes_after_the_arguments_opens_the_block_then(
    anthropic_final: Callable[[bytes], Message],
) -> None:
    items = [
        chunk(call(0, id="call_a", arguments='{"x"')),
        chunk(call(0, name="f", arguments=": 1}")),
        chunk({}, "tool_calls"),
        DONE,
    ]
    _, body = run(items)
    assert events(body)[1:4] == [
        block_start(0, {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}),
        partial(0, '{"x": 1}'),
        block_stop(0),
    ]
    assert anthropic_final(body).content[0].input == {"x": 1}  # type: ignore[union-attr]


def test_interleaved_arguments_still_reach_their_call(anthropic_final: Callable[[bytes], Message]) -> None:
    items = [
        chunk(call(0, id="call_a", name="f", arguments='{"a":')),
        chunk(call(1, id="call_b", name="g", arguments='{"b": 2}')),
        chunk(call(0, arguments=" 1}")),
        chunk({}, "tool_calls"),
        DONE,
    ]
    _, body = run(items)
    final = anthropic_final(body)
    assert [(b.name, b.input) for b in final.content] == [("f", {"a": 1}), ("g", {"b": 2})]  # type: ignore[union-attr]


def test_a_call_without_id_or_name_still_becomes_a_tool_use() -> None:
    _, body = run([chunk(call(0, arguments="{}")), chunk({}, "tool_calls"), DONE])
    started = events(body)[1]
    assert started["content_block"]["id"].startswith("toolu_")
    assert started["content_block"]["name"] == ""


@pytest.mark.parametrize(
    ("finish_reason", "with_tool", "stop_reason"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("content_filter", False, "refusal"),
        ("tool_calls", True, "tool_use"),
        ("stop", True, "tool_use"),
        ("length", True, "max_tokens"),
        ("something_new", False, "end_turn"),
    ],
)
def test_stop_reasons(finish_reason: str, with_tool: bool, stop_reason: str) -> None:
    items = [chunk(call(0, id="c", name="f", arguments="{}"))] if with_tool else [chunk({"content": "x"})]
    stream, body = run([*items, chunk({}, finish_reason), DONE])
    assert events(body)[-2]["delta"]["stop_reason"] == stop_reason
    assert stream.stop_reason == stop_reason


def test_refusal_becomes_text_and_a_refusal_stop(anthropic_final: Callable[[bytes], Message]) -> None:
    _, body = run(
        [ROLE, chunk({"refusal": "I can't"}), chunk({"refusal": " help."}), chunk({}, "stop"), DONE]
    )
    final = anthropic_final(body)
    assert (final.content[0].text, final.stop_reason) == ("I can't help.", "refusal")  # type: ignore[union-attr]


def test_without_reported_usage_the_counts_are_estimated(anthropic_final: Callable[[bytes], Message]) -> None:
    stream, body = run([ROLE, chunk({"content": "Hello world"}), chunk({}, "stop"), DONE])
    assert events(body)[-2]["usage"] == {"output_tokens": math.ceil(len("Hello world") / 3)}
    assert stream.usage is None
    final = anthropic_final(body)
    assert (final.usage.input_tokens, final.usage.output_tokens) == (120, 4)


def test_usage_on_the_finish_chunk_and_choices_beyond_the_first() -> None:
    second = {"index": 1, "delta": {"content": "other"}, "logprobs": None, "finish_reason": None}
    items = [
        chunk({"content": "mine"}),
        {**chunk({"content": ""}), "choices": [second]},
        chunk({}, "stop", usage={"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}),
        DONE,
    ]
    stream, body = run(items)
    produced = events(body)
    assert [e for e in produced if e["type"] == "content_block_delta"] == [text(0, "mine")]
    assert stream.usage == TokenUsage(input_tokens=9, output_tokens=2)


def test_upstream_closing_without_done_after_the_finish_reason_completes() -> None:
    _, body = run([chunk({"content": "x"}), chunk({}, "stop"), USAGE_CHUNK])
    assert events(body)[-2:] == [message_delta("end_turn"), MESSAGE_STOP]


def test_done_at_once_is_an_empty_message(anthropic_final: Callable[[bytes], Message]) -> None:
    _, body = run([DONE])
    produced = events(body)
    assert produced[0]["message"].pop("id").startswith("msg_")
    started = message_start()
    del started["message"]["id"]
    assert produced == [
        started,
        message_delta("end_turn", {"output_tokens": 0}),
        MESSAGE_STOP,
    ]
    assert anthropic_final(body).content == []


@pytest.mark.parametrize(
    ("error", "anthropic_error", "exception"),
    [
        (
            {"message": "boom", "type": "server_error"},
            {"type": "api_error", "message": "boom"},
            anthropic.APIStatusError,
        ),
        (
            {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"},
            {"type": "rate_limit_error", "message": "slow down"},
            anthropic.APIStatusError,
        ),
        (
            {"message": "busy", "type": "service_unavailable"},
            {"type": "overloaded_error", "message": "busy"},
            anthropic.APIStatusError,
        ),
    ],
)
def test_upstream_error_payload_becomes_an_error_event(
    anthropic_final: Callable[[bytes], Message],
    error: dict[str, Any],
    anthropic_error: dict[str, Any],
    exception: type[Exception],
) -> None:
    stream, body = run([chunk({"content": "Hel"}), {"error": error}, chunk({"content": "lo"})])
    assert events(body)[-1] == {"type": "error", "error": anthropic_error}
    assert stream.error == anthropic_error
    assert stream.finish() == []
    assert not stream.finished
    with pytest.raises(exception, match=anthropic_error["message"]):
        anthropic_final(body)


@pytest.mark.parametrize("items", [[], [ROLE, chunk({"content": "Hel"})]])
def test_upstream_closing_early_adds_nothing_and_is_not_finished(items: list[Any]) -> None:
    stream, _ = run(items, finish=False)
    assert stream.finish() == []
    assert (stream.finished, stream.error) == (False, None)


def test_reasoning_tokens_are_kept_for_reporting() -> None:
    usage = {**USAGE, "completion_tokens_details": {"reasoning_tokens": 12}}
    stream, _ = run([chunk({"content": "x"}, "stop"), chunk(None, usage=usage), DONE])
    assert stream.usage == TokenUsage(
        input_tokens=135, output_tokens=20, cache_read_tokens=30, reasoning_tokens=12
    )


def test_non_json_event_is_an_error() -> None:
    _, body = run(["{oops"], finish=False)
    assert events(body) == [
        {
            "type": "error",
            "error": {"type": "api_error", "message": "the upstream sent an event that is not JSON"},
        }
    ]


def test_bytes_split_anywhere_reach_the_sdk_intact(anthropic_final: Callable[[bytes], Message]) -> None:
    upstream = b"".join(
        encode_event(item if isinstance(item, str) else orjson.dumps(item)) for item in PARALLEL_CALLS
    )
    expected = run(PARALLEL_CALLS)[1]
    for size in (1, 5, 64):
        parser = SSEParser()
        stream = OpenAIToAnthropicStream(model="fleet-default", input_tokens_estimate=120)
        frames: list[bytes] = []
        for offset in range(0, len(upstream), size):
            for event in parser.feed(upstream[offset : offset + size]):
                frames += stream.feed(event)
        frames += stream.finish()
        assert b"".join(frames) == expected
    assert len(anthropic_final(expected).content) == 3
