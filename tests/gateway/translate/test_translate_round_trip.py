"""A request that crosses to the other API and back means what it meant."""

from __future__ import annotations

from typing import Any

from fleetplane.gateway.translate import anthropic_request_to_openai, openai_request_to_anthropic

PNG = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

OPENAI_AGENT_TURN: dict[str, Any] = {
    "model": "fleet-default",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "assistant", "content": "It is 18C."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And this?"},
                {"type": "image_url", "image_url": {"url": PNG}},
            ],
        },
    ],
    "tools": [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER},
        }
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "temperature": 0.7,
    "top_p": 0.9,
    "stop": ["END"],
    "user": "u-1",
    "max_completion_tokens": 256,
    "stream": True,
    "stream_options": {"include_usage": True},
}

ANTHROPIC_AGENT_TURN: dict[str, Any] = {
    "model": "fleet-default",
    "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "text", "text": "Thanks, and this?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
            ],
        },
    ],
    "tools": [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "temperature": 0.7,
    "stop_sequences": ["END"],
    "metadata": {"user_id": "u-1"},
    "max_tokens": 256,
    "stream": True,
}


def test_openai_to_anthropic_and_back_is_identity() -> None:
    there = openai_request_to_anthropic(OPENAI_AGENT_TURN, default_max_tokens=4096)
    back = anthropic_request_to_openai(there.body)
    assert (there.dropped, back.dropped) == ([], [])
    assert back.body == OPENAI_AGENT_TURN


def test_anthropic_to_openai_and_back_is_identity() -> None:
    there = anthropic_request_to_openai(ANTHROPIC_AGENT_TURN)
    back = openai_request_to_anthropic(there.body, default_max_tokens=4096)
    assert (there.dropped, back.dropped) == ([], [])
    assert back.body == ANTHROPIC_AGENT_TURN
