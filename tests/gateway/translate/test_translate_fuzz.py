"""The translators are total over whatever a client or an upstream can send.

Requests: any JSON value in any field either translates (to a body orjson can write) or raises
`TranslationError` naming a field of the request. Responses and stream events: nothing raises, and what
comes out is still the client API's shape. The property tests mutate rich, valid templates (so the junk
lands deep inside well-formed requests, where the translators look) and also feed wholly arbitrary
values; the table tests pin the exact refusal for the crashes a review found.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from anthropic.types import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from fleetplane.gateway.sse import SSEEvent, SSEParser
from fleetplane.gateway.translate import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    TranslationError,
    anthropic_error_to_openai,
    anthropic_request_to_openai,
    anthropic_response_to_openai,
    openai_error_to_anthropic,
    openai_request_to_anthropic,
    openai_response_to_anthropic,
    usage_from_anthropic,
    usage_from_openai,
)
from fleetplane.gateway.translate.shared import MAX_DEPTH, MAX_TOKEN_COUNT

FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Strings the translators branch on, so junk often looks almost right.
WORDS = [
    "",
    "text",
    "image_url",
    "image",
    "file",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "refusal",
    "function",
    "custom",
    "base64",
    "url",
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "auto",
    "any",
    "none",
    "required",
    "json_schema",
    "json_object",
    "disabled",
    "stop",
    "length",
    "tool_calls",
    "end_turn",
    "error",
    "text_delta",
    "input_json_delta",
    "thinking_delta",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "message_delta",
    "message_stop",
    "[DONE]",
    "{}",
    '{"a": 1}',
    "[1]",
    "data:image/png;base64,iVBORw0KGgo=",
    "https://example.com/a.png",
]
KEYS = [
    "type",
    "text",
    "role",
    "content",
    "id",
    "name",
    "input",
    "arguments",
    "function",
    "tool_calls",
    "tool_call_id",
    "tool_use_id",
    "image_url",
    "url",
    "source",
    "media_type",
    "data",
    "file",
    "file_data",
    "index",
    "delta",
    "choices",
    "message",
    "usage",
    "error",
    "schema",
    "prompt_tokens",
    "input_tokens",
    "output_tokens",
    "stop_reason",
    "finish_reason",
]
# orjson reads integers in [-2**63, 2**64) as integers, larger ones as floats; it never yields inf or nan.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(WORDS)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)


def nested(depth: int, as_object: bool) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"a": value} if as_object else [value]
    return value


class _Raw(str):
    """Text already written, on dumps_deep's stack."""


def dumps_deep(value: Any) -> str:
    """JSON text for any value, however deep: an upstream may send 1024 levels, orjson writes 254."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out.append(item)
        elif isinstance(item, dict):
            pieces: list[Any] = []
            for i, (key, child) in enumerate(item.items()):
                pieces += [_Raw(("," if i else "") + orjson.dumps(key).decode() + ":"), child]
            stack += [_Raw("}"), *reversed(pieces), _Raw("{")]
        elif isinstance(item, list):
            pieces = []
            for i, child in enumerate(item):
                pieces += [_Raw(",")] if i else []
                pieces.append(child)
            stack += [_Raw("]"), *reversed(pieces), _Raw("[")]
        else:
            out.append(orjson.dumps(item).decode())
    return "".join(out)


# Around orjson's limits: it writes fewer than 255 levels and reads up to 1024.
deep_values = st.builds(nested, st.sampled_from([150, 199, 200, 240, 254, 255, 400, 1000]), st.booleans())
junk = json_values | deep_values
DELETE = object()


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _paths(child, (*path, i))
    return found


@st.composite
def mutated(draw: st.DrawFn, template: Any) -> Any:
    """The template with one to three values (anywhere in it) replaced by junk or removed."""
    value = copy.deepcopy(template)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(value)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        replacement = draw(junk | st.just(DELETE))
        if replacement is DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = replacement
    return value


PNG = "data:image/png;base64,iVBORw0KGgo="
OPENAI_REQUEST: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "rules"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "calling"}],
            "refusal": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42", "is_error": True},
        {"role": "user", "content": "thanks", "name": "bob"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "parallel_tool_calls": False,
    "max_completion_tokens": 100,
    "temperature": 1.5,
    "top_p": 0.9,
    "stop": ["END"],
    "user": "u1",
    "stream": True,
    "stream_options": {"include_usage": True},
    "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
    "n": 1,
    "seed": 3,
}
ANTHROPIC_REQUEST: dict[str, Any] = {
    "model": "claude",
    "max_tokens": 100,
    "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                    "title": "a.pdf",
                },
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "words"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "42"}],
                    "is_error": True,
                },
                {"type": "text", "text": "thanks"},
            ],
        },
        {"role": "assistant", "content": "ok"},
    ],
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}, "strict": True}],
    "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
    "stop_sequences": ["END"],
    "temperature": 0.5,
    "top_k": 5,
    "stream": True,
    "metadata": {"user_id": "u1"},
    "thinking": {"type": "disabled"},
    "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
}
OPENAI_RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "hi",
                "refusal": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 1},
        "completion_tokens_details": {"reasoning_tokens": 1},
    },
}
ANTHROPIC_RESPONSE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 1},
}
OPENAI_CHUNKS: list[Any] = [
    {
        "id": "c1",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    },
    {"id": "c1", "choices": [{"index": 0, "delta": {"content": "hi"}}]},
    {
        "id": "c1",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]
                },
            }
        ],
    },
    {
        "id": "c1",
        "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}],
    },
    {"id": "c1", "choices": [{"index": 0, "delta": {"refusal": "no"}, "finish_reason": "tool_calls"}]},
    {"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    "[DONE]",
]
ANTHROPIC_EVENTS: list[Any] = [
    {
        "type": "message_start",
        "message": {"id": "msg_1", "type": "message", "role": "assistant", "usage": {"input_tokens": 5}},
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
    },
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "thinking_delta", "thinking": "hm"}},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}},
    {"type": "message_stop"},
]


def to_anthropic(body: Any) -> Any:
    return openai_request_to_anthropic(body, default_max_tokens=1024)


def to_openai(body: Any) -> Any:
    return anthropic_request_to_openai(body)


def check_request(translate: Callable[[Any], Any], body: Any) -> None:
    """Translates to a body the gateway can send, or refuses naming a field of the request."""
    try:
        out = translate(body)
    except TranslationError as refused:
        assert isinstance(refused.message, str) and 0 < len(refused.message) < 400, refused.message
        param = refused.param
        assert isinstance(param, str) and param
        # A refusal names a field the client sent, or `messages`, which it must send.
        fields = [*body, "messages"] if isinstance(body, dict) else ["messages"]
        assert param == "body" or any(
            param == key or param.startswith((f"{key}.", f"{key}[")) for key in fields
        ), param
        return
    orjson.dumps(out.body)
    assert all(isinstance(name, str) for name in out.dropped)


def test_the_templates_translate_whole() -> None:
    """The templates are valid, so every failure the properties find comes from the junk put in."""
    assert to_anthropic(OPENAI_REQUEST).body["tools"][0]["name"] == "f"
    assert to_openai(ANTHROPIC_REQUEST).body["tools"][0]["function"]["name"] == "f"


@FUZZ
@given(mutated(OPENAI_REQUEST))
def test_openai_requests_translate_or_are_refused(body: Any) -> None:
    check_request(to_anthropic, body)


@FUZZ
@given(mutated(ANTHROPIC_REQUEST))
def test_anthropic_requests_translate_or_are_refused(body: Any) -> None:
    check_request(to_openai, body)


@FUZZ
@given(junk | st.dictionaries(st.sampled_from([*OPENAI_REQUEST, *ANTHROPIC_REQUEST]), junk, max_size=6))
def test_arbitrary_bodies_translate_or_are_refused(body: Any) -> None:
    check_request(to_anthropic, body)
    check_request(to_openai, body)


@FUZZ
@given(mutated(OPENAI_RESPONSE) | junk)
def test_any_openai_response_becomes_a_valid_anthropic_message(body: Any) -> None:
    out = openai_response_to_anthropic(body, model="claude")
    Message.model_validate_json(orjson.dumps(out))


@FUZZ
@given(mutated(ANTHROPIC_RESPONSE) | junk)
def test_any_anthropic_response_becomes_a_valid_chat_completion(body: Any) -> None:
    out = anthropic_response_to_openai(body, model="gpt-4o", created=1)
    ChatCompletion.model_validate_json(orjson.dumps(out))


@FUZZ
@given(junk, st.integers(400, 599))
def test_any_error_body_becomes_the_clients_error_shape(body: Any, status: int) -> None:
    for translate in (anthropic_error_to_openai, openai_error_to_anthropic):
        _, out = translate(status, body)
        error = out["error"]
        assert isinstance(error["message"], str) and isinstance(error["type"], str)
        orjson.dumps(out)


@FUZZ
@given(junk)
def test_any_usage_reads_as_bounded_counts(usage: Any) -> None:
    for read in (usage_from_openai, usage_from_anthropic):
        for value in _fields(read(usage)):
            assert isinstance(value, int) and 0 <= value < 4 * MAX_TOKEN_COUNT


def _fields(usage: Any) -> list[int]:
    return [
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    ]


@st.composite
def event_data(draw: st.DrawFn, template: list[Any]) -> list[str]:
    """A stream: the template's events, mutated, sometimes reordered or repeated, some not even JSON."""
    events = draw(mutated(template))
    if events and draw(st.booleans()):
        events = draw(st.lists(st.sampled_from(events), max_size=len(events) + 3))
    data = [event if event == "[DONE]" else dumps_deep(event) for event in events]
    if data and draw(st.booleans()):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.text(max_size=20))
    return data


def check_stream(watcher: Any, events: list[SSEEvent], client_api: str) -> None:
    """Never raises; every frame is a well-formed event of the client's API; an error means unfinished."""
    frames: list[bytes] = []
    for event in events:
        frames += watcher.feed(event)
    frames += watcher.finish()
    parser = SSEParser()
    parsed = parser.feed(b"".join(frames)) + parser.finish()
    assert len(parsed) == len(frames)
    for event in parsed:
        if event.data == "[DONE]":
            assert client_api == "openai"
            continue
        payload = orjson.loads(event.data)
        assert isinstance(payload, dict)
        if client_api == "anthropic":
            assert event.event == payload["type"]
    if watcher.error is not None:
        assert watcher.finished is False
        assert all(isinstance(value, str) for value in watcher.error.values())
        last = orjson.loads(parsed[-1].data)
        assert last["type"] == "error" if client_api == "anthropic" else "error" in last
    assert all(isinstance(piece, str) for piece in watcher.text())
    if watcher.usage is not None:
        assert all(0 <= value < 4 * MAX_TOKEN_COUNT for value in _fields(watcher.usage))


@FUZZ
@given(event_data(OPENAI_CHUNKS))
def test_any_openai_stream_becomes_anthropic_events(data: list[str]) -> None:
    stream = OpenAIToAnthropicStream(model="claude", input_tokens_estimate=3)
    check_stream(stream, [SSEEvent(item) for item in data], "anthropic")


@FUZZ
@given(event_data(ANTHROPIC_EVENTS), st.booleans())
def test_any_anthropic_stream_becomes_openai_chunks(data: list[str], named: bool) -> None:
    events = []
    for item in data:
        try:
            kind = orjson.loads(item).get("type")
        except (orjson.JSONDecodeError, AttributeError):
            kind = None
        events.append(SSEEvent(item, kind if named and isinstance(kind, str) else None))
    stream = AnthropicToOpenAIStream(model="gpt-4o", include_usage=True, created=1)
    check_stream(stream, events, "openai")


# The crashes a review found (tools: [null], tools: 7, tool_calls: 7) and their neighbours: the exact
# refusal. (request field overrides, message, param)
USER = {"role": "user", "content": "hi"}


def _assistant(**fields: Any) -> list[dict[str, Any]]:
    return [{"role": "assistant", **fields}, USER]


def _call(**fields: Any) -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}, **fields}


REFUSED_TO_ANTHROPIC = [
    ({"tools": 7}, "tools must be a list", "tools"),
    ({"tools": -1}, "tools must be a list", "tools"),
    ({"tools": {"type": "function"}}, "tools must be a list", "tools"),
    ({"tools": [None]}, "a tool must be an object", "tools[0]"),
    (
        {"tools": [{"type": "function", "function": 5}]},
        "a function tool needs a name",
        "tools[0].function.name",
    ),
    (
        {"tools": [{"type": ["function"]}]},
        "tool type ['function'] is not supported by Anthropic deployments",
        "tools[0].type",
    ),
    (
        {"messages": _assistant(content="x", tool_calls=7)},
        "tool_calls must be a list",
        "messages[0].tool_calls",
    ),
    (
        {"messages": _assistant(content="x", tool_calls=-1)},
        "tool_calls must be a list",
        "messages[0].tool_calls",
    ),
    (
        {"messages": _assistant(tool_calls=[None])},
        "a tool call must be an object",
        "messages[0].tool_calls[0]",
    ),
    (
        {"messages": _assistant(tool_calls=[_call(function=5)])},
        "a tool call needs a function name",
        "messages[0].tool_calls[0].function.name",
    ),
    (
        {"messages": _assistant(tool_calls=[_call(function={"name": "f", "arguments": 5})])},
        "tool call arguments must be a JSON object",
        "messages[0].tool_calls[0].function.arguments",
    ),
    (
        {"messages": _assistant(content=5)},
        "content must be a string, a list of parts or null",
        "messages[0].content",
    ),
    ({"messages": _assistant(content=[5])}, "a content part must be an object", "messages[0].content[0]"),
    (
        {"messages": _assistant(content=[{"type": "text", "text": 5}])},
        "text must be a string",
        "messages[0].content[0].text",
    ),
    ({"messages": _assistant(content="x", refusal=5)}, "refusal must be a string", "messages[0].refusal"),
    ({"messages": [None]}, "a message must be an object", "messages[0]"),
    ({"messages": [{"role": 5, "content": "x"}]}, "unknown role 5", "messages[0].role"),
    (
        {"messages": [{"role": "user", "content": [None]}]},
        "a content part must be an object",
        "messages[0].content[0]",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": {"a": 1}}]}]},
        "text must be a string",
        "messages[0].content[0].text",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}, {"role": "x" * 500}]},
        # A long value is quoted cut short, so junk cannot bloat the error.
        f"unknown role '{'x' * 27}...{'x' * 28}'",
        "messages[1].role",
    ),
    (
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": nested(300, True)}}]},
        "tools[0].function.parameters.a.a is nested more than 200 levels deep",
        "tools[0].function.parameters.a.a",
    ),
    (
        {
            "messages": _assistant(
                tool_calls=[_call(function={"name": "f", "arguments": "[" * 250 + "]" * 250})]
            )
        },
        "tool call arguments must be a JSON object",
        "messages[0].tool_calls[0].function.arguments",
    ),
    (
        {
            "messages": _assistant(
                tool_calls=[
                    _call(function={"name": "f", "arguments": orjson.dumps(nested(250, True)).decode()})
                ]
            )
        },
        "messages[0].tool_calls[0].function.arguments.a.a.a.a.a.a is nested more than 200 levels deep",
        "messages[0].tool_calls[0].function.arguments.a.a.a.a.a.a",
    ),
]


@pytest.mark.parametrize(("fields", "message", "param"), REFUSED_TO_ANTHROPIC)
def test_malformed_openai_requests_are_refused_exactly(
    fields: dict[str, Any], message: str, param: str
) -> None:
    with pytest.raises(TranslationError) as refused:
        to_anthropic({"model": "gpt-4o", "messages": [USER], **fields})
    assert (refused.value.message, refused.value.param) == (message, param)


def _blocks(role: str, *blocks: Any) -> list[dict[str, Any]]:
    return [{"role": role, "content": list(blocks)}]


def _tool_use(**fields: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}, **fields}


def _image(**source: Any) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA", **source}}


REFUSED_TO_OPENAI = [
    ({"tools": 7}, "tools must be a list", "tools"),
    ({"tools": "f"}, "tools must be a list", "tools"),
    ({"tools": [None]}, "a tool must be an object", "tools[0]"),
    ({"tools": [7]}, "a tool must be an object", "tools[0]"),
    (
        {"tools": [{"name": "f"}], "tool_choice": {"type": ["auto"]}},
        "tool_choice {'type': ['auto']} is not supported by OpenAI deployments",
        "tool_choice",
    ),
    ({"messages": [None]}, "a message must be an object", "messages[0]"),
    ({"messages": _blocks("user", None)}, "a content block must be an object", "messages[0].content[0]"),
    ({"messages": _blocks("assistant", 5)}, "a content block must be an object", "messages[0].content[0]"),
    ({"system": [None]}, "a content block must be an object", "system[0]"),
    ({"system": [{"type": "text", "text": 5}]}, "text must be a string", "system[0].text"),
    (
        {"messages": _blocks("assistant", {"type": "text", "text": [1]})},
        "text must be a string",
        "messages[0].content[0].text",
    ),
    ({"messages": _blocks("assistant", _tool_use(id=None))}, "id is required", "messages[0].content[0].id"),
    (
        {"messages": _blocks("assistant", _tool_use(name=5))},
        "a tool_use block needs a name",
        "messages[0].content[0].name",
    ),
    (
        {"messages": _blocks("assistant", _tool_use(input=[1]))},
        "tool_use input must be an object",
        "messages[0].content[0].input",
    ),
    (
        {"messages": _blocks("user", {"type": "tool_result", "content": "x"})},
        "tool_use_id is required",
        "messages[0].content[0].tool_use_id",
    ),
    (
        {"messages": _blocks("user", {"type": "tool_result", "tool_use_id": "t", "content": [None]})},
        "a content block must be an object",
        "messages[0].content[0].content[0]",
    ),
    (
        {"messages": _blocks("user", _image(data=None))},
        "a base64 source needs data as a string",
        "messages[0].content[0].source.data",
    ),
    (
        {"messages": _blocks("user", _image(media_type=[1]))},
        "a base64 source needs media_type as a string",
        "messages[0].content[0].source.media_type",
    ),
    (
        {"messages": _blocks("user", {"type": "document", "source": {"type": "text", "data": 5}})},
        "a text source needs data as a string",
        "messages[0].content[0].source.data",
    ),
    (
        {"output_config": {"format": {"type": "json_schema"}}},
        "output_config.format json_schema needs a schema",
        "output_config.format.schema",
    ),
    (
        {"messages": _blocks("user", {"type": ["text"]})},
        "content block type ['text'] is not supported by OpenAI deployments",
        "messages[0].content[0].type",
    ),
    (
        {"metadata": nested(400, False)},
        "metadata[0][0][0][0][0] is nested more than 200 levels deep",
        "metadata[0][0][0][0][0]",
    ),
]


@pytest.mark.parametrize(("fields", "message", "param"), REFUSED_TO_OPENAI)
def test_malformed_anthropic_requests_are_refused_exactly(
    fields: dict[str, Any], message: str, param: str
) -> None:
    with pytest.raises(TranslationError) as refused:
        to_openai({"model": "claude", "max_tokens": 10, "messages": [USER], **fields})
    assert (refused.value.message, refused.value.param) == (message, param)


@pytest.mark.parametrize("body", [[], "x", None, 5])
def test_a_body_that_is_not_an_object_is_refused(body: Any) -> None:
    for translate in (to_anthropic, to_openai):
        with pytest.raises(TranslationError) as refused:
            translate(body)
        assert (refused.value.message, refused.value.param) == (
            "the request body must be a JSON object",
            "body",
        )


def test_arguments_sent_as_an_object_are_kept() -> None:
    """Some agent frameworks send `arguments` as the object itself; it used to be silently emptied."""
    body = {
        "model": "gpt-4o",
        "messages": _assistant(tool_calls=[_call(function={"name": "f", "arguments": {"a": 1}})]),
    }
    assert to_anthropic(body).body["messages"][0]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}
    ]


# Upstream answers of the wrong shape: what cannot be read is absent, and the client still gets its shape.


def test_an_openai_reply_that_is_a_json_array_is_an_empty_message() -> None:
    out = openai_response_to_anthropic([], model="claude")
    assert (out["content"], out["stop_reason"]) == ([], "end_turn")
    assert out["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def test_an_anthropic_reply_that_is_a_json_array_is_an_empty_completion() -> None:
    out = anthropic_response_to_openai([1, 2], model="gpt-4o", created=1)
    assert out["choices"][0]["message"] == {"role": "assistant", "content": ""}
    assert out["choices"][0]["finish_reason"] == "stop"


def test_unreadable_parts_of_an_openai_reply_read_as_absent() -> None:
    body = {
        "id": ["x"],
        "choices": [
            {"message": {"content": 7, "refusal": 1, "tool_calls": [{"id": 3, "function": "f"}, "x"]}}
        ],
        "usage": [5],
    }
    out = openai_response_to_anthropic(body, model="claude")
    [call] = out["content"]
    assert (call["type"], call["name"], call["input"], call["id"].startswith("toolu_")) == (
        "tool_use",
        "",
        {},
        True,
    )
    assert out["id"].startswith("msg_") and out["stop_reason"] == "tool_use"
    assert out["usage"]["input_tokens"] == 0


def test_unreadable_parts_of_an_anthropic_reply_read_as_absent() -> None:
    body = {
        "content": [
            {"type": "text", "text": 5},
            {"type": "tool_use", "id": 1, "name": [], "input": nested(300, True)},
        ],
        "stop_reason": ["end_turn"],
        "usage": {"input_tokens": -4, "output_tokens": 2**64 - 1, "cache_read_input_tokens": True},
    }
    out = anthropic_response_to_openai(body, model="gpt-4o", created=1)
    [call] = out["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "", "arguments": "{}"} and call["id"].startswith("call_")
    assert out["usage"]["prompt_tokens"] == 0 and out["usage"]["completion_tokens"] == 0
    orjson.dumps(out)


def test_a_reply_whose_content_is_not_a_list_is_empty() -> None:
    out = anthropic_response_to_openai({"content": 7, "stop_reason": "max_tokens"}, model="gpt-4o", created=1)
    assert out["choices"][0]["message"]["content"] == ""
    assert out["choices"][0]["finish_reason"] == "length"


def test_tool_arguments_too_deep_to_write_become_an_empty_input() -> None:
    deep = dumps_deep(nested(600, True))
    body = {
        "choices": [{"message": {"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": deep}}]}}]
    }
    out = openai_response_to_anthropic(body, model="claude")
    assert out["content"][0]["input"] == {}
    orjson.dumps(out)


# Stream events of the wrong structure are an upstream failure: an error event in the client's shape.

MALFORMED_CHUNKS = [
    ('{"id":"c","choices":["x"]}', "choices[0] is not an object"),
    ('{"id":"c","choices":"abc"}', "choices is not a list"),
    ('{"id":"c","choices":{"0":{}}}', "choices is not a list"),
    ('{"choices":[{"delta":[1]}]}', "choices[0].delta is not an object"),
    ('{"choices":[{"delta":{"tool_calls":7}}]}', "choices[0].delta.tool_calls is not a list"),
    ('{"choices":[{"delta":{"tool_calls":[null]}}]}', "choices[0].delta.tool_calls[0] is not an object"),
    (
        '{"choices":[{"delta":{"tool_calls":[{"function":"f"}]}}]}',
        "choices[0].delta.tool_calls[0].function is not an object",
    ),
    ("[1, 2]", "not a JSON object"),
    ('"chunk"', "not a JSON object"),
]


@pytest.mark.parametrize(("data", "what"), MALFORMED_CHUNKS)
def test_a_malformed_openai_chunk_is_an_anthropic_error_event(data: str, what: str) -> None:
    stream = OpenAIToAnthropicStream(model="claude")
    stream.feed(SSEEvent(orjson.dumps(OPENAI_CHUNKS[1]).decode()))
    frames = stream.feed(SSEEvent(data))
    message = f"the upstream sent a malformed chunk: {what}"
    error = {"type": "api_error", "message": message}
    assert frames == [b"event: error\ndata: " + orjson.dumps({"type": "error", "error": error}) + b"\n\n"]
    assert (stream.error, stream.finished) == (error, False)
    assert stream.feed(SSEEvent("[DONE]")) == [] and stream.finish() == []
    assert stream.finished is False


def test_odd_values_inside_a_well_formed_openai_chunk_read_as_absent() -> None:
    stream = OpenAIToAnthropicStream(model="claude")
    frames = stream.feed(
        SSEEvent('{"id":7,"choices":[{"delta":{"content":5,"refusal":[]},"finish_reason":3}],"usage":[1]}')
    )
    assert [orjson.loads(frame.split(b"data: ")[1])["type"] for frame in frames] == ["message_start"]
    assert (stream.error, stream.usage, stream.text()) == (None, None, [])
    stream.feed(SSEEvent("[DONE]"))
    assert stream.finished is True


MALFORMED_EVENTS = [
    ('{"type":"content_block_delta","index":0,"delta":"x"}', "content_block_delta.delta is not an object"),
    ('{"type":"content_block_start","index":0}', "content_block_start.content_block is not an object"),
    ('{"type":"message_start","message":[]}', "message_start.message is not an object"),
    ('{"type":"message_delta","delta":null,"usage":{}}', "message_delta.delta is not an object"),
    ('{"type":["message_stop"]}', "its type is not a string"),
    ("[]", "not a JSON object"),
    ("5", "not a JSON object"),
]


@pytest.mark.parametrize(("data", "what"), MALFORMED_EVENTS)
def test_a_malformed_anthropic_event_is_an_openai_error_chunk(data: str, what: str) -> None:
    stream = AnthropicToOpenAIStream(model="gpt-4o", created=1)
    stream.feed(SSEEvent(orjson.dumps(ANTHROPIC_EVENTS[0]).decode(), "message_start"))
    frames = stream.feed(SSEEvent(data))
    message = f"the upstream sent a malformed event: {what}"
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    assert frames == [b"data: " + orjson.dumps({"error": error}) + b"\n\n"]
    assert (stream.error, stream.finished) == ({"type": "api_error", "message": message}, False)
    assert stream.feed(SSEEvent('{"type":"message_stop"}')) == [] and stream.finish() == []


def test_an_anthropic_error_event_keeps_only_what_can_be_read() -> None:
    stream = AnthropicToOpenAIStream(model="gpt-4o", created=1)
    frames = stream.feed(
        SSEEvent(orjson.dumps({"type": "error", "error": {"type": 5, "message": [1] * 3}}).decode())
    )
    assert stream.error == {"type": "api_error"}
    assert orjson.loads(frames[0][len(b"data: ") :])["error"]["message"] == "upstream returned HTTP 500"
    assert stream.finished is False


def test_odd_values_inside_a_well_formed_anthropic_event_read_as_absent() -> None:
    stream = AnthropicToOpenAIStream(model="gpt-4o", include_usage=True, created=1)
    events = [
        '{"type":"message_start","message":{"id":5,"usage":[1]}}',
        '{"type":"content_block_start","index":true,"content_block":{"type":"tool_use","id":1,"name":2,"input":7}}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":{"a":1}}}',
        '{"type":"message_delta","delta":{"stop_reason":["x"]},"usage":{"output_tokens":"9"}}',
        '{"type":"message_stop"}',
    ]
    frames = [frame for data in events for frame in stream.feed(SSEEvent(data))]
    assert stream.error is None and stream.finished is True
    assert stream.finish_reason == "stop"
    call = orjson.loads(frames[1][len(b"data: ") :])["choices"][0]["delta"]["tool_calls"][0]
    assert call["function"] == {"name": "", "arguments": ""} and call["id"].startswith("call_")


def _tool_message_with_marker(depth: int) -> dict[str, Any]:
    """An OpenAI body nested `depth` levels deep at a tool message part's cache_control (body = level 1),
    where translation nests deepest: the part moves two levels down, into a tool_result's content."""
    part = {"type": "text", "text": "42", "cache_control": nested(depth - 6, True)}
    return {"model": "gpt-4o", "messages": [USER, {"role": "tool", "tool_call_id": "c1", "content": [part]}]}


def test_a_request_at_the_depth_limit_translates_and_serializes() -> None:
    out = to_anthropic(_tool_message_with_marker(MAX_DEPTH))
    orjson.dumps(out.body)
    assert out.body["messages"][0]["content"][1]["type"] == "tool_result"


def test_a_request_one_level_past_the_limit_is_refused() -> None:
    with pytest.raises(TranslationError) as refused:
        to_anthropic(_tool_message_with_marker(MAX_DEPTH + 1))
    where = "messages[1].content[0].cache_control.a"
    message = f"{where} is nested more than 200 levels deep"
    assert (refused.value.message, refused.value.param) == (message, where)
