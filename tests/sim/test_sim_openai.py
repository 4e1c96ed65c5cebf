"""The OpenAI surface through the official `openai` SDK (unmodified: only base_url and key)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from sim_schema_check import problems
from sim_support import WEATHER_TOOL_SCHEMA

from fleetplane.sim.process import SimProcess
from fleetplane.telemetry.tokens import count_openai_chat, count_text

TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_TOOL_SCHEMA}},
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]


def client(sim: SimProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url + "/v1", api_key="sk-test", max_retries=0)


def ask(text: str) -> list[Any]:
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]


def test_chat_completion_usage_matches_the_text(fresh_sim: SimProcess) -> None:
    messages = ask("Tell me about rivers.")
    reply = client(fresh_sim).chat.completions.create(model="sim-gpt", messages=messages)
    choice = reply.choices[0]
    assert reply.object == "chat.completion"
    assert reply.model == "sim-gpt"
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens == count_text(choice.message.content, encoding="o200k_base")
    assert 5 <= reply.usage.completion_tokens <= 80
    assert reply.usage.prompt_tokens == count_openai_chat({"messages": messages})
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_same_request_same_reply(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    first = c.chat.completions.create(model="sim-gpt", messages=ask("same"))
    second = c.chat.completions.create(model="sim-gpt", messages=ask("same"))
    other = c.chat.completions.create(model="sim-gpt", messages=ask("different"))
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content
    assert first.id != second.id


def test_output_tokens_directive_and_length_cap(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    exact = c.chat.completions.create(model="sim-gpt", messages=ask("[[sim output_tokens=33]]"))
    assert exact.usage is not None and exact.usage.completion_tokens == 33
    assert exact.choices[0].finish_reason == "stop"
    capped = c.chat.completions.create(
        model="sim-gpt", messages=ask("[[sim output_tokens=33]]"), max_tokens=10
    )
    assert capped.usage is not None and capped.usage.completion_tokens == 10
    assert capped.choices[0].finish_reason == "length"
    text = exact.choices[0].message.content or ""
    assert text.startswith(capped.choices[0].message.content or "-")
    newer = c.chat.completions.create(
        model="sim-gpt", messages=ask("[[sim output_tokens=33]]"), max_completion_tokens=7
    )
    assert newer.usage is not None and newer.usage.completion_tokens == 7
    assert newer.choices[0].finish_reason == "length"


def test_stop_sequence_cuts_the_reply(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    full = c.chat.completions.create(model="sim-gpt", messages=ask("[[sim output_tokens=60]]"))
    text = full.choices[0].message.content or ""
    stop = text.split(" ")[5]
    cut = c.chat.completions.create(
        model="sim-gpt", messages=ask("[[sim output_tokens=60]]"), stop=[" " + stop]
    )
    content = cut.choices[0].message.content or ""
    assert content == text[: text.index(" " + stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage is not None and cut.usage.completion_tokens == count_text(content, encoding="o200k_base")


def test_n_choices(fresh_sim: SimProcess) -> None:
    reply = client(fresh_sim).chat.completions.create(model="sim-gpt", messages=ask("three please"), n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    texts = [c.message.content or "" for c in reply.choices]
    assert len(set(texts)) == 3
    single = client(fresh_sim).chat.completions.create(model="sim-gpt", messages=ask("three please"))
    assert single.choices[0].message.content == texts[0]
    assert reply.usage is not None
    assert reply.usage.completion_tokens == sum(count_text(t, encoding="o200k_base") for t in texts)


def collect(stream: Any) -> tuple[list[str], list[Any], list[Any]]:
    """Per-choice text, the chunks, and the usage chunks of an SDK stream."""
    texts: dict[int, str] = {}
    chunks, usages = [], []
    for chunk in stream:
        chunks.append(chunk)
        if chunk.usage is not None:
            usages.append(chunk)
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    return [texts[i] for i in sorted(texts)], chunks, usages


def test_stream_carries_the_same_text_and_usage(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    plain = c.chat.completions.create(model="sim-gpt", messages=ask("stream me"))
    stream = c.chat.completions.create(
        model="sim-gpt", messages=ask("stream me"), stream=True, stream_options={"include_usage": True}
    )
    texts, chunks, usages = collect(stream)
    assert texts == [plain.choices[0].message.content]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert len(usages) == 1 and usages[0] is chunks[-1] and usages[0].choices == []
    assert usages[0].usage.model_dump() == plain.usage.model_dump() if plain.usage else False
    # One token per content chunk.
    content_chunks = [ch for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert plain.usage is not None and len(content_chunks) == plain.usage.completion_tokens


def test_no_usage_chunk_without_include_usage(fresh_sim: SimProcess) -> None:
    stream = client(fresh_sim).chat.completions.create(model="sim-gpt", messages=ask("quiet"), stream=True)
    _, chunks, usages = collect(stream)
    assert usages == []
    assert all(ch.choices for ch in chunks)


def test_raw_stream_ends_with_done(fresh_sim: SimProcess) -> None:
    body = {"model": "sim-gpt", "messages": ask("[[sim output_tokens=2]]"), "stream": True}
    with httpx.stream("POST", fresh_sim.url("/v1/chat/completions"), json=body) as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        raw = response.read().decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert len(events) == 2 + 2 + 1 + 1  # role, 2 tokens, finish, [DONE], trailing ""


def test_streamed_n_choices_interleave(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    plain = c.chat.completions.create(model="sim-gpt", messages=ask("[[sim output_tokens=4]]"), n=2)
    texts, chunks, _ = collect(
        c.chat.completions.create(model="sim-gpt", messages=ask("[[sim output_tokens=4]]"), n=2, stream=True)
    )
    assert texts == [ch.message.content for ch in plain.choices]
    content_indexes = [ch.choices[0].index for ch in chunks if ch.choices[0].delta.content]
    assert content_indexes == [0, 1, 0, 1, 0, 1, 0, 1]


def test_tool_call(fresh_sim: SimProcess) -> None:
    reply = client(fresh_sim).chat.completions.create(
        model="sim-gpt", messages=ask("weather in Oslo? [[sim tool=get_weather]]"), tools=TOOLS
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert call.id.startswith("call_") and len(call.id) == 29
    arguments = json.loads(call.function.arguments)
    assert problems(arguments, WEATHER_TOOL_SCHEMA) == []
    expected = count_text("get_weather", encoding="o200k_base") + count_text(
        call.function.arguments, encoding="o200k_base"
    )
    assert reply.usage is not None and reply.usage.completion_tokens == expected


def test_tool_choice_forces_and_none_disables(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    forced = c.chat.completions.create(
        model="sim-gpt",
        messages=ask("what time is it"),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = forced.choices[0].message.tool_calls or []
    assert [call.function.name for call in calls] == ["get_time"]
    assert calls[0].function.arguments == "{}"
    none = c.chat.completions.create(
        model="sim-gpt", messages=ask("what time"), tools=TOOLS, tool_choice="none"
    )
    assert none.choices[0].message.tool_calls is None
    assert none.choices[0].finish_reason == "stop"


def test_after_a_tool_result_the_model_answers(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    first = c.chat.completions.create(model="sim-gpt", messages=ask("weather?"), tools=TOOLS)
    call = (first.choices[0].message.tool_calls or [])[0]
    messages = [
        *ask("weather?"),
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'},
    ]
    answer = c.chat.completions.create(model="sim-gpt", messages=messages, tools=TOOLS)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content
    required = c.chat.completions.create(
        model="sim-gpt", messages=messages, tools=TOOLS, tool_choice="required"
    )
    assert required.choices[0].finish_reason == "tool_calls"


def test_streamed_tool_call_matches_the_plain_one(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    messages = ask("weather in Bergen? [[sim tool=get_weather]]")
    plain = c.chat.completions.create(model="sim-gpt", messages=messages, tools=TOOLS)
    chunks = list(
        c.chat.completions.create(
            model="sim-gpt",
            messages=messages,
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [ch.choices[0].delta for ch in chunks if ch.choices]
    first_call = (deltas[0].tool_calls or [])[0]
    assert first_call.id and first_call.function and first_call.function.name == "get_weather"
    assert first_call.function.arguments == ""
    pieces = [
        (d.tool_calls or [])[0].function.arguments or ""  # type: ignore[union-attr]
        for d in deltas[1:]
        if d.tool_calls
    ]
    assert len(pieces) > 2
    assert all((d.tool_calls or [])[0].id is None for d in deltas[1:] if d.tool_calls)
    plain_call = (plain.choices[0].message.tool_calls or [])[0]
    assert "".join(pieces) == plain_call.function.arguments
    assert first_call.id == plain_call.id
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and plain.usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_a_tool_call_that_does_not_fit_becomes_cut_text(fresh_sim: SimProcess) -> None:
    reply = client(fresh_sim).chat.completions.create(
        model="sim-gpt", messages=ask("[[sim tool=get_weather]]"), tools=TOOLS, max_tokens=3
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.tool_calls is None
    assert reply.usage is not None and reply.usage.completion_tokens == 3


@pytest.mark.anyio
async def test_async_client_and_stream(fresh_sim: SimProcess) -> None:
    c = openai.AsyncOpenAI(base_url=fresh_sim.base_url + "/v1", api_key="sk-test", max_retries=0)
    reply = await c.chat.completions.create(model="sim-gpt", messages=ask("async"))
    stream = await c.chat.completions.create(model="sim-gpt", messages=ask("async"), stream=True)
    text = "".join([ch.choices[0].delta.content or "" async for ch in stream])
    assert text == reply.choices[0].message.content
    await c.close()


def test_embeddings_float_and_base64(fresh_sim: SimProcess) -> None:
    c = client(fresh_sim)
    # The SDK asks for base64 by default and decodes it back into floats.
    default = c.embeddings.create(model="sim-embed", input=["hello", "world"])
    floats = c.embeddings.create(model="sim-embed", input=["hello", "world"], encoding_format="float")
    assert [d.index for d in default.data] == [0, 1]
    assert len(default.data[0].embedding) == 64
    for a, b in zip(default.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
        assert sum(v * v for v in b.embedding) == pytest.approx(1.0)
    assert floats.data[0].embedding != floats.data[1].embedding
    assert floats.usage.prompt_tokens == 2 and floats.usage.total_tokens == 2
    single = c.embeddings.create(model="sim-embed", input="hello", encoding_format="float")
    assert single.data[0].embedding == floats.data[0].embedding
    short = c.embeddings.create(model="sim-embed", input="hello", dimensions=16, encoding_format="float")
    assert len(short.data[0].embedding) == 16
    assert sum(v * v for v in short.data[0].embedding) == pytest.approx(1.0)


def test_models_list(fresh_sim: SimProcess) -> None:
    models = client(fresh_sim).models.list()
    ids = [m.id for m in models.data]
    assert ids[:3] == ["sim-gpt", "sim-claude", "sim-embed"]
    assert models.data[1].owned_by == "anthropic"
    assert client(fresh_sim).models.retrieve("sim-gpt").id == "sim-gpt"


def test_unknown_model_is_404_model_not_found(fresh_sim: SimProcess) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(fresh_sim).chat.completions.create(model="gpt-nope", messages=ask("hi"))
    assert caught.value.status_code == 404
    assert caught.value.body == {
        "message": "The model `gpt-nope` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
    with pytest.raises(openai.NotFoundError):
        client(fresh_sim).embeddings.create(model="embed-nope", input="x")


def post(sim: SimProcess, path: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        sim.url(path), content=content, headers={"content-type": "application/json", **(headers or {})}
    )


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (
            b"{not json",
            400,
            {
                "message": "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
                "sent was "
                "not valid JSON.)",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            },
        ),
        (
            b'{"messages": []}',
            400,
            {
                "message": "you must provide a model parameter",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            },
        ),
        (
            b'{"model": "sim-gpt"}',
            400,
            {
                "message": "Missing required parameter: 'messages'.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "missing_required_parameter",
            },
        ),
        (
            b'{"model": "sim-gpt", "messages": []}',
            400,
            {
                "message": "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an "
                "empty array instead.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "empty_array",
            },
        ),
        (
            b'{"model": "sim-gpt", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}',
            400,
            {
                "message": "Invalid type for 'max_tokens': expected an integer, but got a string instead.",
                "type": "invalid_request_error",
                "param": "max_tokens",
                "code": "invalid_type",
            },
        ),
        (
            b'{"model": "sim-gpt", "messages": [{"role": "user", "content": "x"}], "n": 0}',
            400,
            {
                "message": "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 "
                "instead.",
                "type": "invalid_request_error",
                "param": "n",
                "code": "integer_below_min_value",
            },
        ),
        (
            b'{"model": "sim-gpt", "messages": [{"role": "user", "content": "x"}], "stream_options": {}}',
            400,
            {
                "message": "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "type": "invalid_request_error",
                "param": "stream_options",
                "code": None,
            },
        ),
        (
            b'{"model": "sim-gpt", "messages": [{"role": "user", "content": "x"}], "tool_choice": '
            b'"required"}',
            400,
            {
                "message": "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                "are specified.",
                "type": "invalid_request_error",
                "param": "tool_choice",
                "code": "invalid_value",
            },
        ),
        (
            b'{"model": "sim-gpt", "messages": [{"role": "user", "content": "x [[sim '
            b'output_tokens=lots]]"}]}',
            400,
            {
                "message": "sim directive output_tokens=lots: expected a whole number",
                "type": "invalid_request_error",
                "param": "messages",
                "code": None,
            },
        ),
        (
            b'{"model": "sim-embed", "messages": [{"role": "user", "content": "x"}]}',
            400,
            {
                "message": "The model `sim-embed` is an embeddings model and cannot be used with this "
                "endpoint.",
                "type": "invalid_request_error",
                "param": "model",
                "code": None,
            },
        ),
        (
            b'{"model": "sim-tiny-context", "messages": [{"role": "user", "content": "'
            + b"word " * 40
            + b'"}]}',
            400,
            {
                "message": "This model's maximum context length is 20 tokens. However, your messages "
                "resulted in "
                "48 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            },
        ),
    ],
)
def test_bad_chat_requests(fresh_sim: SimProcess, body: bytes, status: int, error: dict[str, Any]) -> None:
    response = post(fresh_sim, "/v1/chat/completions", body)
    assert response.status_code == status
    assert response.json() == {"error": error}
    assert response.headers["x-request-id"].startswith("req_")
    # Nothing was served or charged.
    assert fresh_sim.stats()["total"]["tokens_in"] == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b'{"model": "sim-embed"}',
            {
                "message": "Missing required parameter: 'input'.",
                "type": "invalid_request_error",
                "param": "input",
                "code": "missing_required_parameter",
            },
        ),
        (
            b'{"model": "sim-embed", "input": []}',
            {
                "message": "'$.input' is invalid. An input must be a non-empty string or array.",
                "type": "invalid_request_error",
                "param": "input",
                "code": None,
            },
        ),
        (
            b'{"model": "sim-embed", "input": "x", "encoding_format": "hex"}',
            {
                "message": "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
                "type": "invalid_request_error",
                "param": "encoding_format",
                "code": "invalid_value",
            },
        ),
        (
            b'{"model": "sim-embed", "input": "x", "dimensions": 65}',
            {
                "message": "Invalid 'dimensions': integer above maximum value. Expected a value <= 64, "
                "but got 65 "
                "instead.",
                "type": "invalid_request_error",
                "param": "dimensions",
                "code": "integer_above_max_value",
            },
        ),
    ],
)
def test_bad_embedding_requests(fresh_sim: SimProcess, body: bytes, error: dict[str, Any]) -> None:
    response = post(fresh_sim, "/v1/embeddings", body)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_unknown_route(fresh_sim: SimProcess) -> None:
    response = httpx.get(fresh_sim.url("/v1/nothing"))
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Unknown request URL: GET /v1/nothing."
