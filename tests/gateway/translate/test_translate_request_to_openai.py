from __future__ import annotations

from typing import Any

import pytest

from fleetplane.gateway.translate import TranslationError, anthropic_request_to_openai

USER = {"role": "user", "content": "hi"}
TOOL = {"name": "get_weather", "description": "Weather now", "input_schema": {"type": "object"}}
OPENAI_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather now", "parameters": {"type": "object"}},
}
CACHE = {"type": "ephemeral"}


def translate(**body: Any) -> tuple[dict[str, Any], list[str]]:
    body.setdefault("model", "claude-sonnet-4-5")
    body.setdefault("max_tokens", 1024)
    body.setdefault("messages", [USER])
    result = anthropic_request_to_openai(body)
    return result.body, result.dropped


def expected(**body: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": [USER], "max_completion_tokens": 1024, **body}


PARAMS = [
    ({}, expected(), []),
    ({"temperature": 0.2, "top_p": 0.5}, expected(temperature=0.2, top_p=0.5), []),
    ({"stop_sequences": ["END"]}, expected(stop=["END"]), []),
    ({"metadata": {"user_id": "u-1"}}, expected(user="u-1"), []),
    ({"stream": True}, expected(stream=True, stream_options={"include_usage": True}), []),
    ({"stream": False}, expected(stream=False), []),
    ({"top_k": 5}, expected(), ["top_k"]),
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, expected(), ["thinking"]),
    ({"thinking": {"type": "disabled"}}, expected(), []),
    (
        {"service_tier": "auto", "cache_control": CACHE, "container": "c"},
        expected(),
        ["service_tier", "cache_control", "container"],
    ),
    (
        {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}, "effort": "low"}},
        expected(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": {"type": "object"}, "strict": True},
            }
        ),
        ["output_config.effort"],
    ),
    ({"mcp_servers": []}, expected(), []),
]


@pytest.mark.parametrize(("fields", "body", "dropped"), PARAMS)
def test_parameters(fields: dict[str, Any], body: dict[str, Any], dropped: list[str]) -> None:
    assert translate(**fields) == (body, dropped)


def test_max_tokens_param_for_older_servers() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [USER]}
    result = anthropic_request_to_openai(body, max_tokens_param="max_tokens")
    assert result.body == {"model": "m", "messages": [USER], "max_tokens": 10}


TOOL_CHOICES = [
    (None, None),
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "any"}, {"tool_choice": "required"}),
    ({"type": "none"}, {"tool_choice": "none"}),
    (
        {"type": "tool", "name": "get_weather"},
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    ),
    (
        {"type": "auto", "disable_parallel_tool_use": True},
        {"tool_choice": "auto", "parallel_tool_calls": False},
    ),
    (
        {"type": "any", "disable_parallel_tool_use": True},
        {"tool_choice": "required", "parallel_tool_calls": False},
    ),
    ({"type": "none", "disable_parallel_tool_use": True}, {"tool_choice": "none"}),
]


@pytest.mark.parametrize(("choice", "openai_fields"), TOOL_CHOICES)
def test_tool_choice(choice: Any, openai_fields: Any) -> None:
    body, dropped = translate(tools=[TOOL], tool_choice=choice)
    assert (body, dropped) == (expected(tools=[OPENAI_TOOL], **(openai_fields or {})), [])


def test_tool_fields() -> None:
    tool = {"name": "ping", "strict": True, "cache_control": CACHE, "type": "custom", "defer_loading": False}
    body, dropped = translate(tools=[tool])
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}, "strict": True},
        }
    ]
    assert dropped == ["cache_control", "defer_loading"]


def test_tool_choice_without_tools_is_dropped_silently() -> None:
    assert translate(tool_choice={"type": "any"}) == (expected(), [])


@pytest.mark.parametrize(
    ("system", "messages"),
    [
        ("Be brief.", [{"role": "system", "content": "Be brief."}]),
        ("", []),
        ([{"type": "text", "text": "Be brief."}], [{"role": "system", "content": "Be brief."}]),
        (
            [
                {"type": "text", "text": "Be brief."},
                {"type": "text", "text": "Cite.", "cache_control": CACHE},
            ],
            [
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Cite."}],
                }
            ],
        ),
    ],
)
def test_system(system: Any, messages: list[dict[str, Any]]) -> None:
    body, _ = translate(system=system)
    assert body["messages"] == [*messages, USER]


def test_tool_use_and_tool_results() -> None:
    messages = [
        USER,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking "},
                {"type": "text", "text": "both."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"c": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C", "cache_control": CACHE},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "no data"}],
                    "is_error": True,
                },
                {"type": "text", "text": "Thanks"},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_3", "name": "noop", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_3"}]},
    ]
    body, dropped = translate(messages=messages)
    assert body["messages"] == [
        USER,
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"c":"Paris"}'},
                },
                {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "no data"}]},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "toolu_3", "type": "function", "function": {"name": "noop", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_3", "content": ""},
    ]
    assert dropped == ["thinking", "cache_control", "is_error"]


def test_images_and_documents() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "a.pdf",
        },
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
    ]
    body, dropped = translate(messages=[{"role": "user", "content": content}])
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
                },
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "document"},
                },
                {"type": "text", "text": "plain words"},
            ],
        }
    ]
    assert dropped == []


def _user(block: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [block]}]


REFUSED = [
    (
        {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        "tool type 'web_search_20250305' is not supported by OpenAI deployments",
        "tools[0].type",
    ),
    ({"tools": [{"input_schema": {"type": "object"}}]}, "a tool needs a name", "tools[0].name"),
    (
        {"tools": [TOOL], "tool_choice": {"type": "maybe"}},
        "tool_choice {'type': 'maybe'} is not supported by OpenAI deployments",
        "tool_choice",
    ),
    (
        {"mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}]},
        "mcp_servers is not supported by OpenAI deployments",
        "mcp_servers",
    ),
    ({"system": 3}, "system must be a string or a list of text blocks", "system"),
    ({"system": [{"type": "image"}]}, "only text blocks are allowed here", "system[0].type"),
    ({"messages": {"role": "user"}}, "messages must be a list", "messages"),
    ({"messages": [{"role": "system", "content": "x"}]}, "unknown role 'system'", "messages[0].role"),
    (
        {"messages": [{"role": "user", "content": None}]},
        "content must be a string or a list of blocks",
        "messages[0].content",
    ),
    (
        {"messages": [{"role": "assistant", "content": 1}]},
        "content must be a string or a list of blocks",
        "messages[0].content",
    ),
    (
        {"messages": _user({"type": "image", "source": {"type": "file", "file_id": "f"}})},
        "only base64 and url image sources can be sent to OpenAI deployments",
        "messages[0].content[0]",
    ),
    (
        {"messages": _user({"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}})},
        "document source 'url' cannot be sent to OpenAI deployments",
        "messages[0].content[0].source.type",
    ),
    (
        {"messages": _user({"type": "search_result", "source": "s", "title": "t", "content": []})},
        "content block type 'search_result' is not supported by OpenAI deployments",
        "messages[0].content[0].type",
    ),
    (
        {
            "messages": _user(
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}
            )
        },
        "only text blocks are allowed here",
        "messages[0].content[0].content[0].type",
    ),
    (
        {"messages": _user({"type": "tool_result", "tool_use_id": "t", "content": 5})},
        "tool_result content must be a string or a list of blocks",
        "messages[0].content[0].content",
    ),
    (
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}],
                },
            ]
        },
        "content block type 'server_tool_use' is not supported by OpenAI deployments",
        "messages[1].content[0].type",
    ),
]


@pytest.mark.parametrize(("fields", "message", "param"), REFUSED)
def test_refused(fields: dict[str, Any], message: str, param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        translate(**fields)
    assert (caught.value.message, caught.value.param) == (message, param)
