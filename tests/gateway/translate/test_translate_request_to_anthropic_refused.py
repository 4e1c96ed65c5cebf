"""Every request an Anthropic deployment cannot honour without changing the result, with its exact error."""

from __future__ import annotations

from typing import Any

import pytest

from fleetplane.gateway.translate import TranslationError, openai_request_to_anthropic

USER = {"role": "user", "content": "hi"}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
PNG = "data:image/png;base64,iVBORw0KGgo="


def translate(**body: Any) -> None:
    body.setdefault("model", "gpt-4o")
    body.setdefault("messages", [USER])
    openai_request_to_anthropic(body, default_max_tokens=4096)


def _assistant_call(arguments: Any) -> dict[str, Any]:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _part(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [part]}]


def _unsupported(what: str) -> str:
    return f"{what} is not supported by Anthropic deployments"


# (OpenAI body fields, message, param)
REFUSED = [
    ({"n": 2}, _unsupported("n other than 1"), "n"),
    ({"logprobs": True}, _unsupported("logprobs"), "logprobs"),
    ({"top_logprobs": 3}, _unsupported("top_logprobs"), "top_logprobs"),
    ({"audio": {"voice": "alloy", "format": "mp3"}}, _unsupported("audio output"), "audio"),
    ({"modalities": ["text", "audio"]}, _unsupported("audio output"), "modalities"),
    ({"web_search_options": {}}, _unsupported("web search"), "web_search_options"),
    ({"functions": [{"name": "f"}]}, "functions is deprecated and not translated; use tools", "functions"),
    (
        {"function_call": "auto"},
        "function_call is deprecated and not translated; use tool_choice",
        "function_call",
    ),
    (
        {"response_format": {"type": "json_object"}},
        "response_format 'json_object' is not supported by Anthropic deployments; use json_schema",
        "response_format",
    ),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"name": "r"}}},
        "response_format json_schema needs a schema",
        "response_format.json_schema",
    ),
    ({"max_tokens": 0}, "max_tokens must be a positive integer", "max_tokens"),
    (
        {"max_completion_tokens": "9"},
        "max_completion_tokens must be a positive integer",
        "max_completion_tokens",
    ),
    ({"stop": 5}, "stop must be a string or a list of strings", "stop"),
    (
        {"tools": [{"type": "custom", "custom": {"name": "x"}}]},
        _unsupported("tool type 'custom'"),
        "tools[0].type",
    ),
    (
        {"tools": [{"type": "function", "function": {}}]},
        "a function tool needs a name",
        "tools[0].function.name",
    ),
    ({"tools": [TOOL], "tool_choice": "sometimes"}, _unsupported("tool_choice 'sometimes'"), "tool_choice"),
    ({"messages": "hi"}, "messages must be a list", "messages"),
    ({"messages": [{"role": "function", "content": "x"}]}, "unknown role 'function'", "messages[0].role"),
    (
        {"messages": [{"role": "user", "content": 3}]},
        "content must be a string or a list of parts",
        "messages[0].content",
    ),
    (
        {"messages": _part({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}})},
        _unsupported("content part type 'input_audio'"),
        "messages[0].content[0].type",
    ),
    (
        {"messages": _part({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}})},
        "image_url.url must be an http(s) URL or a base64 data URL",
        "messages[0].content[0].image_url.url",
    ),
    (
        {"messages": _part({"type": "image_url", "image_url": {"url": "data:image/png,raw"}})},
        "image_url.url must be an http(s) URL or a base64 data URL",
        "messages[0].content[0].image_url.url",
    ),
    (
        {"messages": _part({"type": "file", "file": {"file_id": "file-1"}})},
        "only files sent inline as file_data can be forwarded to Anthropic deployments",
        "messages[0].content[0].file",
    ),
    (
        {"messages": _part({"type": "file", "file": {"file_data": "JVBERi0="}})},
        "file_data must be a base64 data URL",
        "messages[0].content[0].file.file_data",
    ),
    (
        {
            "messages": [
                {"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG}}]},
                USER,
            ]
        },
        "system messages may only hold text",
        "messages[0].content[0].type",
    ),
    (
        {"messages": [USER, _assistant_call("{bad")]},
        "tool call arguments must be a JSON object",
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        {"messages": [USER, _assistant_call("[1, 2]")]},
        "tool call arguments must be a JSON object",
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        {
            "messages": [
                USER,
                {"role": "assistant", "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]},
            ]
        },
        "a tool call needs a function name",
        "messages[1].tool_calls[0].function.name",
    ),
    (
        {
            "messages": [
                USER,
                {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
            ]
        },
        "id is required",
        "messages[1].tool_calls[0].id",
    ),
    (
        {"messages": [USER, _assistant_call("{}"), {"role": "tool", "content": "ok"}]},
        "tool_call_id is required",
        "messages[2].tool_call_id",
    ),
    (
        {"messages": [USER, {"role": "assistant", "content": None, "audio": {"id": "a1"}}]},
        _unsupported("assistant audio"),
        "messages[1].audio",
    ),
    (
        {
            "messages": [
                USER,
                {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": PNG}}]},
            ]
        },
        _unsupported("assistant part type 'image_url'"),
        "messages[1].content[0].type",
    ),
]


@pytest.mark.parametrize(("fields", "message", "param"), REFUSED)
def test_refused(fields: dict[str, Any], message: str, param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        translate(**fields)
    assert (caught.value.message, caught.value.param, str(caught.value)) == (message, param, message)
