"""The Anthropic surface through the official `anthropic` SDK (unmodified: only base_url and key)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest
from sim_schema_check import problems
from sim_support import WEATHER_TOOL_SCHEMA

from fleetplane.sim.process import SimProcess
from fleetplane.telemetry.tokens import count_anthropic_messages, count_text

TOOLS: list[Any] = [
    {"name": "get_weather", "description": "Weather by city", "input_schema": WEATHER_TOOL_SCHEMA},
    {"name": "get_time", "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}}},
]


def client(sim: SimProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.base_url, api_key="sk-ant-test", max_retries=0)


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_message(fresh_sim: SimProcess) -> None:
    body: dict[str, Any] = {"system": "Be brief.", "messages": ask("Tell me about forests.")}
    message = client(fresh_sim).messages.create(model="sim-claude", max_tokens=1000, **body)
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "sim-claude"
    assert message.id.startswith("msg_01")
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert len(message.content) == 1 and message.content[0].type == "text"
    text = message.content[0].text
    assert message.usage.output_tokens == count_text(text, encoding="o200k_base")
    assert message.usage.input_tokens == count_anthropic_messages(body)
    assert message.usage.cache_read_input_tokens == 0


def test_max_tokens_cuts_and_stop_sequences_stop(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    full = c.messages.create(model="sim-claude", max_tokens=500, messages=ask("[[sim output_tokens=40]]"))
    assert full.usage.output_tokens == 40
    text = full.content[0].text  # type: ignore[union-attr]
    cut = c.messages.create(model="sim-claude", max_tokens=12, messages=ask("[[sim output_tokens=40]]"))
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 12
    assert text.startswith(cut.content[0].text)  # type: ignore[union-attr]
    word = " " + text.split(" ")[4]
    stopped = c.messages.create(
        model="sim-claude",
        max_tokens=500,
        messages=ask("[[sim output_tokens=40]]"),
        stop_sequences=["zzz", word],
    )
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == word
    assert stopped.content[0].text == text[: text.index(word)]  # type: ignore[union-attr]


def test_count_tokens_matches_usage(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    kwargs: dict[str, Any] = {"system": "sys", "messages": ask("count me"), "tools": TOOLS}
    counted = c.messages.count_tokens(model="sim-claude", **kwargs)
    message = c.messages.create(model="sim-claude", max_tokens=100, tool_choice={"type": "none"}, **kwargs)
    assert counted.input_tokens == message.usage.input_tokens


def test_tool_use(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    message = c.messages.create(
        model="sim-claude",
        max_tokens=500,
        messages=ask("weather?"),
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.id.startswith("toolu_01") and len(block.id) == 30
    assert problems(block.input, WEATHER_TOOL_SCHEMA) == []
    arguments = orjson.dumps(block.input).decode()
    assert message.usage.output_tokens == count_text("get_weather", encoding="o200k_base") + count_text(
        arguments, encoding="o200k_base"
    )
    followup = [
        *ask("weather?"),
        {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "21C"}]},
    ]
    answer = c.messages.create(model="sim-claude", max_tokens=500, messages=followup, tools=TOOLS)
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"
    again = c.messages.create(
        model="sim-claude", max_tokens=500, messages=followup, tools=TOOLS, tool_choice={"type": "any"}
    )
    assert again.stop_reason == "tool_use"
    none = c.messages.create(
        model="sim-claude", max_tokens=500, messages=ask("x"), tools=TOOLS, tool_choice={"type": "none"}
    )
    assert none.stop_reason == "end_turn"


def sse_events(raw: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in raw.strip().split("\n\n"):
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        payload = orjson.loads(data_line.removeprefix("data: "))
        assert payload["type"] == name_line.removeprefix("event: ")
        events.append((payload["type"], payload))
    return events


def stream_raw(sim: SimProcess, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    headers = {"anthropic-version": "2023-06-01", "x-api-key": "k"}
    with httpx.stream(
        "POST", sim.url("/v1/messages"), json={**body, "stream": True}, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        return sse_events(response.read().decode())


def test_stream_event_sequence(fresh_sim: SimProcess) -> None:
    body = {"model": "sim-claude", "max_tokens": 100, "messages": ask("[[sim output_tokens=3]]")}
    events = stream_raw(fresh_sim, body)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["usage"]["input_tokens"] == count_anthropic_messages(body)
    assert start["usage"]["output_tokens"] == 1
    assert start["content"] == [] and start["stop_reason"] is None
    assert events[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert all(p["delta"]["type"] == "text_delta" for n, p in events if n == "content_block_delta")
    assert events[7][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 3},
    }


def test_streamed_tool_use_sends_input_json_deltas(fresh_sim: SimProcess) -> None:
    body = {
        "model": "sim-claude",
        "max_tokens": 500,
        "messages": ask("[[sim tool=get_weather]]"),
        "tools": TOOLS,
    }
    plain = client(fresh_sim).messages.create(**body)
    events = stream_raw(fresh_sim, body)
    start = events[1][1]["content_block"]
    assert start["type"] == "tool_use" and start["name"] == "get_weather" and start["input"] == {}
    partial = "".join(p["delta"]["partial_json"] for n, p in events if n == "content_block_delta")
    assert all(p["delta"]["type"] == "input_json_delta" for n, p in events if n == "content_block_delta")
    assert orjson.loads(partial) == plain.content[0].input  # type: ignore[union-attr]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"]["output_tokens"] == plain.usage.output_tokens


def test_sdk_stream_matches_the_plain_message(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    kwargs: dict[str, Any] = {"model": "sim-claude", "max_tokens": 64, "messages": ask("stream this")}
    plain = c.messages.create(**kwargs)
    with c.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens
    assert final.stop_reason == plain.stop_reason


@pytest.mark.anyio
async def test_async_client(fresh_sim: SimProcess) -> None:
    c = anthropic.AsyncAnthropic(base_url=fresh_sim.base_url, api_key="k", max_retries=0)
    message = await c.messages.create(model="sim-claude", max_tokens=50, messages=ask("async"))
    async with c.messages.stream(model="sim-claude", max_tokens=50, messages=ask("async")) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == message.content[0].text  # type: ignore[union-attr]
    await c.close()


def test_models_in_anthropic_shape(fresh_sim: SimProcess) -> None:
    page = client(fresh_sim).models.list()
    assert [m.id for m in page.data] == [
        "sim-gpt",
        "sim-claude",
        "sim-tiny-context",
        "sim-limited",
        "sim-anthropic-limited",
    ]
    claude = client(fresh_sim).models.retrieve("sim-claude")
    assert (claude.type, claude.display_name) == ("model", "Sim Claude")
    raw = httpx.get(fresh_sim.url("/v1/models"), headers={"anthropic-version": "2023-06-01"}).json()
    assert raw["has_more"] is False and raw["first_id"] == "sim-gpt"


def test_unknown_model_is_404_not_found_error(fresh_sim: SimProcess) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client(fresh_sim).messages.create(model="claude-nope", max_tokens=10, messages=ask("hi"))
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"] == {"type": "not_found_error", "message": "model: claude-nope"}
    assert body["request_id"] == caught.value.response.headers["request-id"]


HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2", None),
        (
            b'{"model": "sim-claude", "messages": [{"role": "user", "content": "x"}]}',
            "max_tokens: Field required",
        ),
        (b'{"model": "sim-claude", "max_tokens": 5}', "messages: Field required"),
        (b'{"messages": [], "max_tokens": 5}', "model: Field required"),
        (
            b'{"model": "sim-claude", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}',
            "max_tokens: Input should be greater than or equal to 1",
        ),
        (
            b'{"model": "sim-claude", "max_tokens": 5, "messages": []}',
            "messages: at least one message is required",
        ),
        (
            b'{"model": "sim-claude", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]}',
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            b'{"model": "sim-claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], '
            b'"tool_choice": {"type": "any"}}',
            "tool_choice: may only be specified while providing tools",
        ),
        (
            b'{"model": "sim-claude", "max_tokens": 5, "messages": [{"role": "user", "content": "[[sim '
            b'tool=x]]"}]}',
            "messages: sim directive tool=x names no tool in the request's tools",
        ),
    ],
)
def test_bad_message_requests(fresh_sim: SimProcess, body: bytes, message: str | None) -> None:
    response = httpx.post(fresh_sim.url("/v1/messages"), content=body, headers=HEADERS)
    assert response.status_code == 400
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    if message is None:
        assert payload["error"]["message"].startswith("There was an error parsing the body of your request")
    else:
        assert payload["error"]["message"] == message
    assert payload["request_id"] == response.headers["request-id"]
    assert fresh_sim.stats()["total"]["tokens_in"] == 0


def test_sdk_raises_bad_request_for_missing_max_tokens(fresh_sim: SimProcess) -> None:
    raw = client(fresh_sim).with_options(max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        raw.post("/v1/messages", body={"model": "sim-claude", "messages": ask("x")}, cast_to=httpx.Response)
    assert caught.value.status_code == 400
    assert caught.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }  # type: ignore[index]
