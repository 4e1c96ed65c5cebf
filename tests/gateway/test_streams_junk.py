"""Same-API passthroughs and the usage readers are total over whatever an upstream sends.

A passthrough forwards every event as it came and never raises; it watches what it can read (usage, text,
an error) and ignores the rest. The usage readers turn any JSON into bounded counts or None, and the reply
readers into a list of strings.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetplane.gateway.sse import SSEEvent, SSEParser
from fleetplane.gateway.streams import AnthropicPassthrough, OpenAIPassthrough
from fleetplane.gateway.usage import anthropic_reply_text, anthropic_usage, openai_reply_text, openai_usage
from fleetplane.telemetry.cost import TokenUsage

FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KEYS = [
    "type",
    "choices",
    "delta",
    "content",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "usage",
    "message",
    "error",
    "text",
    "partial_json",
    "thinking",
    "input",
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
]
WORDS = ["", "text", "tool_use", "thinking", "content_block_delta", "message_start", "message_delta", "error"]
# What orjson can read: integers in [-2**63, 2**64), finite floats.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from(WORDS)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner)
    ),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = {"content": "x"}
    for _ in range(depth):
        value = {"delta": value}
    return value


def deep_json(depth: int) -> str:
    """A chunk nested deeper than orjson writes (254 levels) but not deeper than it reads (1024)."""
    return (
        '{"choices":[{"delta":' * 1
        + '{"a":' * depth
        + "1"
        + "}" * depth
        + "}],"
        + '"usage":{"prompt_tokens":1}}'
    )


# Event data as an upstream may send it: JSON of any shape, chunks shaped almost right, or not JSON.
event_data = st.one_of(
    json_values.map(lambda value: orjson.dumps(value).decode()),
    st.fixed_dictionaries(
        {},
        optional={
            "choices": json_values | st.lists(json_values, max_size=3),
            "usage": json_values,
            "error": json_values,
            "delta": json_values,
            "message": json_values,
            "type": st.sampled_from(WORDS) | json_values,
        },
    ).map(lambda value: orjson.dumps(value).decode()),
    st.builds(deep_json, st.sampled_from([200, 260, 1000])),
    st.text(max_size=30),  # the SSE parser never yields lone surrogates, but the watchers must not care
    st.just("[DONE]"),
)
event_names = st.none() | st.sampled_from(WORDS) | st.text(max_size=8)


def _check(watcher: Any, events: list[SSEEvent]) -> None:
    frames: list[bytes] = []
    for event in events:
        frames += watcher.feed(event)
    frames += watcher.finish()
    assert all(isinstance(frame, bytes) and frame.endswith(b"\n\n") for frame in frames)
    parser = SSEParser()
    assert len(parser.feed(b"".join(frames)) + parser.finish()) == len(frames)
    assert all(isinstance(piece, str) for piece in watcher.text())
    if watcher.usage is not None:
        assert isinstance(watcher.usage, TokenUsage)
    if watcher.error is not None:
        assert all(isinstance(value, str) for value in watcher.error.values())


@FUZZ
@given(st.lists(event_data, max_size=6), st.booleans())
def test_openai_passthrough_never_raises(data: list[str], include_usage: bool) -> None:
    _check(OpenAIPassthrough(include_usage=include_usage), [SSEEvent(item) for item in data])


@FUZZ
@given(st.lists(st.tuples(event_data, event_names), max_size=6))
def test_anthropic_passthrough_never_raises(events: list[tuple[str, str | None]]) -> None:
    _check(AnthropicPassthrough(), [SSEEvent(data, name) for data, name in events])


@FUZZ
@given(json_values | st.builds(nested, st.sampled_from([10, 300])))
def test_the_usage_readers_never_raise(value: Any) -> None:
    for read in (openai_usage, anthropic_usage):
        usage = read(value)
        assert usage is None or all(
            0 <= count < 2**55
            for count in (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
            )
        )
    for body in (value, {"choices": [value]}, {"choices": [{"message": value}]}, {"content": [value]}):
        assert all(isinstance(piece, str) for piece in openai_reply_text(body) + anthropic_reply_text(body))


def _frame(data: str) -> bytes:
    return b"data: " + data.encode() + b"\n\n"


# (event data, what the client is sent, the text watched)
OPENAI_JUNK = [
    ('{"id":"c","choices":["x"]}', '{"id":"c","choices":["x"]}', []),
    ('{"choices":"abc"}', '{"choices":"abc"}', []),
    ('{"choices":{"0":{"delta":{"content":"x"}}}}', '{"choices":{"0":{"delta":{"content":"x"}}}}', []),
    ('{"choices":[{"delta":["x"]},{"delta":{"content":"kept"}}]}', None, ["kept"]),
    ('{"choices":[{"delta":{"content":5,"tool_calls":7}}]}', None, []),
    (
        '{"choices":[{"delta":{"tool_calls":["x",{"function":"f"},{"function":{"name":"f","arguments":[1]}}]}}]}',
        None,
        ["f"],
    ),
    ("[1,2]", "[1,2]", []),
    ("not json", "not json", []),
]


@pytest.mark.parametrize(("data", "sent", "text"), OPENAI_JUNK)
def test_openai_passthrough_forwards_junk_and_keeps_what_it_can_read(
    data: str, sent: str | None, text: list[str]
) -> None:
    watcher = OpenAIPassthrough(include_usage=False)
    assert watcher.feed(SSEEvent(data)) == [_frame(sent or data)]
    assert (watcher.text(), watcher.usage, watcher.error) == (text, None, None)


def test_a_usage_that_is_not_an_object_is_not_usage() -> None:
    watcher = OpenAIPassthrough(include_usage=True)
    watcher.feed(SSEEvent('{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}'))
    watcher.feed(SSEEvent('{"choices":[],"usage":[1,2]}'))
    assert watcher.usage == TokenUsage(input_tokens=5, output_tokens=2)


def test_a_usage_the_client_did_not_ask_for_is_stripped_whatever_its_shape() -> None:
    watcher = OpenAIPassthrough(include_usage=False)
    assert watcher.feed(SSEEvent('{"choices":[],"usage":"lots"}')) == []
    sent = watcher.feed(SSEEvent('{"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":-3}}'))
    assert sent == [_frame('{"choices":[{"delta":{"content":"a"}}]}')]
    assert watcher.usage == TokenUsage()


def test_a_chunk_too_deep_to_rewrite_goes_out_as_it_came() -> None:
    data = deep_json(300)
    watcher = OpenAIPassthrough(include_usage=False)
    assert watcher.feed(SSEEvent(data)) == [_frame(data)]
    assert watcher.usage == TokenUsage(input_tokens=1)


def test_an_openai_error_keeps_only_its_readable_fields() -> None:
    watcher = OpenAIPassthrough(include_usage=True)
    watcher.feed(SSEEvent('{"error":{"message":["no"],"type":"server_error","code":5}}'))
    assert watcher.error == {"type": "server_error"}
    watcher.feed(SSEEvent('{"error":"overloaded"}'))
    assert watcher.error == {"message": "overloaded"}


def test_multi_line_data_stays_one_event() -> None:
    watcher = OpenAIPassthrough(include_usage=True)
    [frame] = watcher.feed(SSEEvent("line one\nline two"))
    assert frame == b"data: line one\ndata: line two\n\n"


# (event name, data, usage, text, error) after message_start with input_tokens 5
ANTHROPIC_JUNK: list[tuple[str | None, str, TokenUsage | None, list[str], dict[str, str] | None]] = [
    ("content_block_delta", '{"delta":["x"]}', TokenUsage(input_tokens=5), [], None),
    (
        "content_block_delta",
        '{"delta":{"text":5,"partial_json":"{}"}}',
        TokenUsage(input_tokens=5),
        ["{}"],
        None,
    ),
    ("message_delta", '{"usage":[1]}', TokenUsage(input_tokens=5), [], None),
    ("message_delta", '{"usage":{"output_tokens":7}}', TokenUsage(input_tokens=5, output_tokens=7), [], None),
    ("message_start", '{"message":"x"}', TokenUsage(input_tokens=5), [], None),
    ("message_start", '{"message":{"usage":7}}', TokenUsage(input_tokens=5), [], None),
    ("error", '{"error":[1]}', TokenUsage(input_tokens=5), [], {}),
    (
        "error",
        '{"error":{"type":"overloaded_error","message":{}}}',
        TokenUsage(input_tokens=5),
        [],
        {"type": "overloaded_error"},
    ),
    ("content_block_delta", "[]", TokenUsage(input_tokens=5), [], None),
    ("content_block_delta", "not json", TokenUsage(input_tokens=5), [], None),
    (
        None,
        '{"type":"content_block_delta","delta":{"text":"unnamed"}}',
        TokenUsage(input_tokens=5),
        ["unnamed"],
        None,
    ),
]


@pytest.mark.parametrize(("name", "data", "usage", "text", "error"), ANTHROPIC_JUNK)
def test_anthropic_passthrough_forwards_junk_and_keeps_what_it_can_read(
    name: str | None, data: str, usage: TokenUsage | None, text: list[str], error: dict[str, str] | None
) -> None:
    watcher = AnthropicPassthrough()
    watcher.feed(SSEEvent('{"type":"message_start","message":{"usage":{"input_tokens":5}}}', "message_start"))
    sent = watcher.feed(SSEEvent(data, name))
    assert sent == [(f"event: {name}\n" if name else "").encode() + _frame(data)]
    assert (watcher.usage, watcher.text(), watcher.error, watcher.finished) == (usage, text, error, False)


def test_an_unnamed_message_stop_still_finishes() -> None:
    watcher = AnthropicPassthrough()
    watcher.feed(SSEEvent('{"type":"message_stop"}'))
    assert watcher.finished is True


OPENAI_REPLIES: list[tuple[Any, list[str]]] = [
    ([], []),
    ({"choices": "x"}, []),
    ({"choices": ["x", 5, {"message": "m"}]}, []),
    ({"choices": [{"message": {"content": ["a"], "tool_calls": 7}}]}, []),
    (
        {
            "choices": [
                {
                    "message": {
                        "content": "hi",
                        "refusal": "no",
                        "tool_calls": ["x", {"function": {"name": "f"}}],
                    }
                }
            ]
        },
        ["hi", "no", "f"],
    ),
]


@pytest.mark.parametrize(("body", "pieces"), OPENAI_REPLIES)
def test_openai_reply_text_reads_what_it_can(body: Any, pieces: list[str]) -> None:
    assert openai_reply_text(body) == pieces


ANTHROPIC_REPLIES: list[tuple[Any, list[str]]] = [
    ([], []),
    ({"content": "text"}, []),
    ({"content": [5, {"type": "text", "text": 5}]}, []),
    (
        {
            "content": [
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "hi"},
                {"type": "tool_use", "name": "f", "input": {"a": 1}},
                {"type": "tool_use", "name": 3, "input": nested(300)},
                {"type": "redacted_thinking", "data": "x"},
            ]
        },
        ["hmm", "hi", 'f{"a":1}'],
    ),
]


@pytest.mark.parametrize(("body", "pieces"), ANTHROPIC_REPLIES)
def test_anthropic_reply_text_reads_what_it_can(body: Any, pieces: list[str]) -> None:
    assert anthropic_reply_text(body) == pieces


USAGES: list[tuple[Any, TokenUsage | None, TokenUsage | None]] = [
    ([1, 2], None, None),
    ("5", None, None),
    (
        {
            "prompt_tokens": 2**64 - 1,
            "completion_tokens": True,
            "prompt_tokens_details": [1],
            "input_tokens": -1,
        },
        TokenUsage(),
        TokenUsage(),
    ),
    (
        {
            "prompt_tokens": 7,
            "completion_tokens_details": {"reasoning_tokens": 2},
            "cache_read_input_tokens": 3,
        },
        TokenUsage(input_tokens=7, reasoning_tokens=2),
        TokenUsage(input_tokens=3, cache_read_tokens=3),
    ),
]


@pytest.mark.parametrize(("usage", "openai", "anthropic"), USAGES)
def test_usage_of_odd_shapes(usage: Any, openai: TokenUsage | None, anthropic: TokenUsage | None) -> None:
    assert (openai_usage(usage), anthropic_usage(usage)) == (openai, anthropic)
