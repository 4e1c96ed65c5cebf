"""The official openai SDK, unmodified (only base_url and key), against the gateway and the simulator."""

from __future__ import annotations

import base64
import struct

import openai
import pytest
from harness import GatewayUnderTest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


def client(gateway: GatewayUnderTest, key: str = "full") -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys[key], max_retries=0)


def test_chat_completion_is_served_and_charged(gateway: GatewayUnderTest) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="chain", messages=[{"role": "user", "content": "Hello [[sim output_tokens=12]]"}]
    )
    completion = raw.parse()
    assert raw.headers["x-fleetplane-deployment"] == "sim/sim-large"
    assert raw.headers["x-fleetplane-fallback"] == "false"
    assert raw.headers["x-fleetplane-model-group"] == "chain"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 12
    [record] = gateway.usage(at_least=1)
    assert record.request_id == raw.headers["x-fleetplane-request-id"]
    assert (record.team, record.agent, record.model, record.provider) == ("support", "bot", "chain", "sim")
    assert record.input_tokens == completion.usage.prompt_tokens
    assert record.output_tokens == 12
    assert record.usage_source == "reported"
    # price: $2 / $8 per million tokens
    expected = (record.input_tokens * 2 + 12 * 8) / 1_000_000
    assert float(record.cost_usd) == pytest.approx(expected)


def test_stream_without_include_usage_hides_the_forced_usage_chunk(gateway: GatewayUnderTest) -> None:
    stream = client(gateway).chat.completions.create(
        model="chain", messages=[{"role": "user", "content": "Hi [[sim output_tokens=7]]"}], stream=True
    )
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 7
    [record] = gateway.usage(at_least=1)
    assert record.stream is True
    assert record.output_tokens == 7
    assert record.usage_source == "reported"


def test_stream_with_include_usage_charges_the_same_as_non_streamed(gateway: GatewayUnderTest) -> None:
    messages = [{"role": "user", "content": "Same content [[sim output_tokens=9]]"}]
    plain = client(gateway).chat.completions.create(model="solo", messages=messages)
    chunks = list(
        client(gateway).chat.completions.create(
            model="solo", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens  # type: ignore[union-attr]
    first, second = gateway.usage(at_least=2)
    assert (first.input_tokens, first.output_tokens, first.cost_usd) == (
        second.input_tokens,
        second.output_tokens,
        second.cost_usd,
    )


@pytest.mark.anyio
async def test_async_client(gateway: GatewayUnderTest) -> None:
    async with openai.AsyncOpenAI(
        base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0
    ) as aclient:
        completion = await aclient.chat.completions.create(
            model="solo", messages=[{"role": "user", "content": "async [[sim output_tokens=4]]"}]
        )
        assert completion.usage is not None and completion.usage.completion_tokens == 4
        stream = await aclient.chat.completions.create(
            model="solo",
            messages=[{"role": "user", "content": "async stream [[sim output_tokens=4]]"}],
            stream=True,
        )
        pieces = [
            c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content
        ]
        assert len("".join(pieces).split()) == 4


@pytest.mark.parametrize("model", ["chain", "claude"])
def test_tool_calls(gateway: GatewayUnderTest, model: str) -> None:
    """Through an OpenAI upstream, and translated to and from an Anthropic one."""
    completion = client(gateway).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in call.function.arguments  # type: ignore[union-attr]


@pytest.mark.parametrize("model", ["chain", "claude"])
def test_streamed_tool_calls(gateway: GatewayUnderTest, model: str) -> None:
    with client(gateway).chat.completions.stream(
        model=model,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "tool_calls"


def test_chat_through_an_anthropic_upstream_is_translated_and_charged(gateway: GatewayUnderTest) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="claude",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi [[sim output_tokens=6]]"},
        ],
    )
    completion = raw.parse()
    assert raw.headers["x-fleetplane-deployment"] == "sim-anthropic/sim-claude"
    assert completion.object == "chat.completion"
    assert completion.usage is not None and completion.usage.completion_tokens == 6
    [record] = gateway.usage(at_least=1)
    assert record.output_tokens == 6 and record.usage_source == "reported"


def test_embeddings_float_and_base64(gateway: GatewayUnderTest) -> None:
    c = client(gateway)
    default = c.embeddings.create(model="embed", input=["alpha", "beta"])  # the SDK asks for base64
    assert [len(d.embedding) for d in default.data] == [32, 32]
    floats = c.embeddings.create(model="embed", input="alpha", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(default.data[0].embedding)
    raw = c.with_options().embeddings.with_raw_response.create(
        model="embed", input="alpha", encoding_format="base64"
    )
    encoded = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack("<32f", base64.b64decode(encoded))
    assert list(decoded) == pytest.approx(floats.data[0].embedding, abs=1e-6)
    records = gateway.usage()
    assert [r.api for r in records] == ["embeddings"] * 3
    assert records[0].input_tokens == default.usage.prompt_tokens


def test_models_lists_what_the_key_may_use(gateway: GatewayUnderTest) -> None:
    everything = {m.id for m in client(gateway).models.list()}
    assert everything == {"chain", "solo", "claude", "embed", "cached", "rescue", "split"}
    assert {m.id for m in client(gateway, "limited").models.list()} == {"solo"}
