from __future__ import annotations

from typing import Any

import pytest

from fleetplane.gateway.translate import openai_request_to_anthropic

USER = {"role": "user", "content": "hi"}
TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather now", "parameters": {"type": "object"}},
}
ANTHROPIC_TOOL = {"name": "get_weather", "description": "Weather now", "input_schema": {"type": "object"}}
PNG = "data:image/png;base64,iVBORw0KGgo="


def translate(**body: Any) -> tuple[dict[str, Any], list[str]]:
    body.setdefault("model", "gpt-4o")
    body.setdefault("messages", [USER])
    result = openai_request_to_anthropic(body, default_max_tokens=4096)
    return result.body, result.dropped


def expected(**body: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [USER], "max_tokens": 4096, **body}


# (OpenAI body fields, Anthropic body, dropped)
PARAMS = [
    ({}, expected(), []),
    ({"max_tokens": 50}, expected(max_tokens=50), []),
    ({"max_completion_tokens": 100, "max_tokens": 50}, expected(max_tokens=100), []),
    ({"temperature": 0.5, "top_p": 0.9}, expected(temperature=0.5, top_p=0.9), []),
    ({"temperature": 1.5}, expected(temperature=1), ["temperature"]),
    ({"temperature": 1}, expected(temperature=1), []),
    ({"stop": "END"}, expected(stop_sequences=["END"]), []),
    ({"stop": ["a", "b"]}, expected(stop_sequences=["a", "b"]), []),
    ({"stop": None, "temperature": None}, expected(), []),
    ({"user": "u-1"}, expected(metadata={"user_id": "u-1"}), []),
    ({"stream": True, "stream_options": {"include_usage": True}}, expected(stream=True), []),
    ({"n": 1, "logprobs": False, "top_logprobs": 0}, expected(), []),
    ({"top_k": 40}, expected(top_k=40), []),
    ({"response_format": {"type": "text"}}, expected(), []),
    (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": {"type": "object"}},
            }
        },
        expected(output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}}),
        [],
    ),
    (
        {
            "frequency_penalty": 0.1,
            "presence_penalty": 0.1,
            "seed": 7,
            "logit_bias": {"1": 2},
            "service_tier": "auto",
            "store": True,
            "metadata": {"k": "v"},
            "reasoning_effort": "low",
            "x_vendor_thing": 1,
        },
        expected(),
        [
            "frequency_penalty",
            "presence_penalty",
            "seed",
            "logit_bias",
            "service_tier",
            "store",
            "metadata",
            "reasoning_effort",
            "x_vendor_thing",
        ],
    ),
    ({"modalities": ["text"]}, expected(), []),
]


@pytest.mark.parametrize(("fields", "body", "dropped"), PARAMS)
def test_parameters(fields: dict[str, Any], body: dict[str, Any], dropped: list[str]) -> None:
    assert translate(**fields) == (body, dropped)


# (OpenAI tool_choice, parallel_tool_calls, Anthropic tool_choice or None)
TOOL_CHOICES = [
    (None, None, None),
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    (
        {"type": "function", "function": {"name": "get_weather"}},
        None,
        {"type": "tool", "name": "get_weather"},
    ),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
    ("auto", True, {"type": "auto"}),
]


@pytest.mark.parametrize(("choice", "parallel", "anthropic_choice"), TOOL_CHOICES)
def test_tool_choice(choice: Any, parallel: Any, anthropic_choice: Any) -> None:
    body, dropped = translate(tools=[TOOL], tool_choice=choice, parallel_tool_calls=parallel)
    want = expected(tools=[ANTHROPIC_TOOL])
    if anthropic_choice is not None:
        want["tool_choice"] = anthropic_choice
    assert (body, dropped) == (want, [])


def test_tool_defaults_and_strict() -> None:
    tool = {"type": "function", "function": {"name": "ping", "strict": True}}
    body, _ = translate(tools=[tool])
    assert body["tools"] == [
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}, "strict": True}
    ]


def test_tool_choice_without_tools_asks_for_nothing() -> None:
    assert translate(tool_choice="required", parallel_tool_calls=False) == (expected(), [])


def test_system_and_developer_messages_become_system_blocks() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        USER,
        {
            "role": "developer",
            "content": [{"type": "text", "text": "Cite.", "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "system", "content": ""},
    ]
    body, _ = translate(messages=messages)
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Cite.", "cache_control": {"type": "ephemeral"}},
    ]
    assert body["messages"] == [USER]


def test_a_single_system_string_stays_a_string() -> None:
    body, _ = translate(messages=[{"role": "system", "content": "Be brief."}, USER])
    assert body == expected(system="Be brief.")


def test_tool_calls_and_results_and_turn_merging() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "user", "content": [{"type": "text", "text": "Quickly."}]},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"c":"Paris"}'},
                },
                {"id": "call.2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {
            "role": "tool",
            "tool_call_id": "call.2",
            "content": [{"type": "text", "text": "no data"}],
            "is_error": True,
        },
        {"role": "user", "content": "Thanks", "name": "alice"},
    ]
    body, dropped = translate(messages=messages)
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris and Rome?"},
                {"type": "text", "text": "Quickly."},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"c": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "no data"}],
                    "is_error": True,
                },
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]
    assert dropped == ["name"]


def test_assistant_text_refusal_and_tool_call_together() -> None:
    message = {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "refusal", "refusal": "Not that part."},
        ],
        "refusal": "No.",
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }
    body, _ = translate(messages=[USER, message])
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "text", "text": "Not that part."},
            {"type": "text", "text": "No."},
            {"type": "tool_use", "id": "c", "name": "f", "input": {}},
        ],
    }


def test_plain_assistant_text_stays_a_string() -> None:
    body, _ = translate(messages=[USER, {"role": "assistant", "content": "Hello"}, USER])
    assert body["messages"][1] == {"role": "assistant", "content": "Hello"}


def test_images_and_files() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "auto"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
    ]
    body, dropped = translate(messages=[{"role": "user", "content": content}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "a.pdf",
        },
    ]
    assert dropped == ["detail"]
