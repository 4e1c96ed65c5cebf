from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from fleetplane.gateway.translate import (
    TokenUsage,
    anthropic_response_to_openai,
    openai_response_to_anthropic,
    usage_from_anthropic,
    usage_from_openai,
)
from fleetplane.gateway.translate.shared import anthropic_id, openai_id

ANTHROPIC_USAGE = {
    "input_tokens": 100,
    "output_tokens": 20,
    "cache_read_input_tokens": 30,
    "cache_creation_input_tokens": 5,
}
OPENAI_USAGE = {
    "prompt_tokens": 135,
    "completion_tokens": 20,
    "total_tokens": 155,
    "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 5},
}


def anthropic_message(
    content: list[dict[str, Any]], stop_reason: str = "end_turn", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "msg_01ABC",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": ANTHROPIC_USAGE,
        **extra,
    }


def openai_completion(message: dict[str, Any], finish_reason: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-01ABC",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": OPENAI_USAGE,
        **extra,
    }


TEXT = [{"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}]
TOOL_USE: list[dict[str, Any]] = [
    {"type": "thinking", "thinking": "Need the weather.", "signature": "sig"},
    {"type": "text", "text": "Checking."},
    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
]
CALL = {
    "id": "toolu_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}

# (Anthropic content, stop_reason, OpenAI message, finish_reason)
TO_OPENAI = [
    (TEXT, "end_turn", {"role": "assistant", "content": "Hello world"}, "stop"),
    (TEXT, "stop_sequence", {"role": "assistant", "content": "Hello world"}, "stop"),
    (TEXT, "max_tokens", {"role": "assistant", "content": "Hello world"}, "length"),
    (TEXT, "model_context_window_exceeded", {"role": "assistant", "content": "Hello world"}, "length"),
    (TEXT, "refusal", {"role": "assistant", "content": "Hello world"}, "content_filter"),
    (TEXT, "pause_turn", {"role": "assistant", "content": "Hello world"}, "stop"),
    (TOOL_USE, "tool_use", {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]}, "tool_calls"),
    (TOOL_USE[2:], "tool_use", {"role": "assistant", "content": None, "tool_calls": [CALL]}, "tool_calls"),
    ([], "end_turn", {"role": "assistant", "content": ""}, "stop"),
]


@pytest.mark.parametrize(("content", "stop_reason", "message", "finish_reason"), TO_OPENAI)
def test_anthropic_response_to_openai(
    content: list[dict[str, Any]], stop_reason: str, message: dict[str, Any], finish_reason: str
) -> None:
    source = anthropic_message(content, stop_reason)
    Message.model_validate(source)
    result = anthropic_response_to_openai(source, model="fleet-default", created=1700000000)
    assert result == {
        "id": "chatcmpl-01ABC",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "fleet-default",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": OPENAI_USAGE,
    }
    ChatCompletion.model_validate(result)


# (OpenAI message, finish_reason, Anthropic content, stop_reason)
TO_ANTHROPIC = [
    (
        {"role": "assistant", "content": "Hello world"},
        "stop",
        [{"type": "text", "text": "Hello world"}],
        "end_turn",
    ),
    (
        {"role": "assistant", "content": "Hello world"},
        "length",
        [{"type": "text", "text": "Hello world"}],
        "max_tokens",
    ),
    ({"role": "assistant", "content": "Hel"}, "content_filter", [{"type": "text", "text": "Hel"}], "refusal"),
    (
        {"role": "assistant", "content": None, "refusal": "I can't help with that."},
        "stop",
        [{"type": "text", "text": "I can't help with that."}],
        "refusal",
    ),
    (
        {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]},
        "tool_calls",
        [{"type": "text", "text": "Checking."}, TOOL_USE[2]],
        "tool_use",
    ),
    ({"role": "assistant", "content": None, "tool_calls": [CALL]}, "stop", [TOOL_USE[2]], "tool_use"),
    (
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{**CALL, "function": {"name": "f", "arguments": '{"cut'}}],
        },
        "length",
        [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}],
        "max_tokens",
    ),
    (
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": '{"a":1}'}},
        "function_call",
        [{"type": "tool_use", "id": "GENERATED", "name": "f", "input": {"a": 1}}],
        "tool_use",
    ),
    (
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        "stop",
        [{"type": "text", "text": "ab"}],
        "end_turn",
    ),
    ({"role": "assistant", "content": ""}, "stop", [], "end_turn"),
]


@pytest.mark.parametrize(("message", "finish_reason", "content", "stop_reason"), TO_ANTHROPIC)
def test_openai_response_to_anthropic(
    message: dict[str, Any], finish_reason: str, content: list[dict[str, Any]], stop_reason: str
) -> None:
    result = openai_response_to_anthropic(openai_completion(message, finish_reason), model="fleet-default")
    content = [dict(block) for block in content]
    for produced, wanted in zip(result["content"], content, strict=True):
        if wanted.get("id") == "GENERATED":
            assert produced["id"].startswith("toolu_")
            wanted["id"] = produced["id"]
    assert result == {
        "id": "msg_01ABC",
        "type": "message",
        "role": "assistant",
        "model": "fleet-default",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": ANTHROPIC_USAGE,
    }
    Message.model_validate(result)


def test_openai_usage_without_details_has_no_cache() -> None:
    completion = openai_completion({"role": "assistant", "content": "x"})
    completion["usage"] = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    result = openai_response_to_anthropic(completion, model="m")
    assert result["usage"] == {
        "input_tokens": 12,
        "output_tokens": 3,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def test_missing_usage_and_choices_still_make_valid_responses() -> None:
    result = openai_response_to_anthropic({"id": "chatcmpl-1", "choices": []}, model="m")
    assert result["content"] == [] and result["stop_reason"] == "end_turn"
    assert result["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }
    Message.model_validate(result)
    completion = anthropic_response_to_openai({"id": "msg_1", "content": []}, model="m", created=1)
    assert completion["usage"] == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    ChatCompletion.model_validate(completion)


def test_response_round_trip_keeps_id_content_stop_and_usage() -> None:
    source = anthropic_message(TOOL_USE[1:], "tool_use")
    completion = anthropic_response_to_openai(source, model="claude-sonnet-4-5", created=1)
    assert openai_response_to_anthropic(completion, model="claude-sonnet-4-5") == source


@pytest.mark.parametrize(
    ("anthropic", "openai"),
    [("msg_01XyZ", "chatcmpl-01XyZ"), ("msg_", "chatcmpl-"), ("abc", "chatcmpl-abc")],
)
def test_ids_map_stably(anthropic: str, openai: str) -> None:
    assert openai_id(anthropic) == openai
    assert openai_id(anthropic) == openai_id(anthropic)
    if anthropic.startswith("msg_"):
        assert anthropic_id(openai) == anthropic


def test_missing_ids_are_generated_with_the_right_prefix() -> None:
    assert openai_id(None).startswith("chatcmpl-") and len(openai_id(None)) > len("chatcmpl-")
    assert anthropic_id("").startswith("msg_") and len(anthropic_id("")) > len("msg_")


def test_usage_is_read_into_the_gateways_token_usage() -> None:
    # Cached input counts inside input_tokens (OpenAI's prompt_tokens), whichever API reported it.
    expected = TokenUsage(input_tokens=135, output_tokens=20, cache_read_tokens=30, cache_write_tokens=5)
    assert usage_from_anthropic(ANTHROPIC_USAGE) == expected
    assert usage_from_openai(OPENAI_USAGE) == expected
    assert usage_from_openai({"completion_tokens_details": {"reasoning_tokens": 4}}) == TokenUsage(
        reasoning_tokens=4
    )
    assert usage_from_anthropic({"input_tokens": None, "output_tokens": True}) == TokenUsage()
