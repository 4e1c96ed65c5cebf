"""The official anthropic SDK, unmodified (only base_url and key), against the gateway and the simulator."""

from __future__ import annotations

import anthropic
import pytest
from harness import GatewayUnderTest

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def client(gateway: GatewayUnderTest, key: str = "full") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=gateway.keys[key], max_retries=0)


@pytest.mark.parametrize(
    ("model", "deployment"), [("claude", "sim-anthropic/sim-claude"), ("chain", "sim/sim-large")]
)
def test_messages(gateway: GatewayUnderTest, model: str, deployment: str) -> None:
    """Natively to an Anthropic upstream, and translated to an OpenAI one."""
    raw = client(gateway).messages.with_raw_response.create(
        model=model,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello [[sim output_tokens=8]]"}],
    )
    message = raw.parse()
    assert raw.headers["x-fleetplane-deployment"] == deployment
    assert message.type == "message" and message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 8
    [record] = gateway.usage(at_least=1)
    assert record.api == "messages" and record.output_tokens == 8 and record.usage_source == "reported"


@pytest.mark.parametrize("model", ["claude", "chain"])
def test_streamed_messages_charge_like_plain_ones(gateway: GatewayUnderTest, model: str) -> None:
    messages = [{"role": "user", "content": "Stream me [[sim output_tokens=10]]"}]
    plain = client(gateway).messages.create(model=model, max_tokens=100, messages=messages)  # type: ignore[arg-type]
    with client(gateway).messages.stream(model=model, max_tokens=100, messages=messages) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == 10
    first, second = gateway.usage(at_least=2)
    assert second.stream is True
    assert (first.output_tokens, first.cost_usd) == (second.output_tokens, second.cost_usd)


@pytest.mark.parametrize("model", ["claude", "chain"])
def test_tool_use(gateway: GatewayUnderTest, model: str) -> None:
    message = client(gateway).messages.create(
        model=model,
        max_tokens=200,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather in Rome?"}],  # type: ignore[list-item]
    )
    assert message.stop_reason == "tool_use"
    [block] = [b for b in message.content if b.type == "tool_use"]
    assert block.name == "get_weather" and "city" in block.input  # type: ignore[union-attr,operator]


@pytest.mark.parametrize("model", ["claude", "chain"])
def test_streamed_tool_use(gateway: GatewayUnderTest, model: str) -> None:
    with client(gateway).messages.stream(
        model=model,
        max_tokens=200,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather in Rome?"}],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_message()
    [block] = [b for b in final.content if b.type == "tool_use"]
    assert block.name == "get_weather"
    assert final.stop_reason == "tool_use"


@pytest.mark.anyio
async def test_async_client(gateway: GatewayUnderTest) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key=gateway.keys["full"], max_retries=0
    ) as aclient:
        message = await aclient.messages.create(
            model="claude",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi [[sim output_tokens=3]]"}],
        )
        assert message.usage.output_tokens == 3
        async with aclient.messages.stream(
            model="claude",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi [[sim output_tokens=3]]"}],
        ) as stream:
            final = await stream.get_final_message()
        assert final.usage.output_tokens == 3


def test_models_in_anthropic_shape(gateway: GatewayUnderTest) -> None:
    names = {m.id for m in client(gateway, "limited").models.list()}
    assert names == {"solo"}
