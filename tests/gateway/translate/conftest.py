"""The official SDKs read the bytes the translators emit through an in-memory transport (no network), so a
stream is checked by the same decoders and accumulators a real client runs."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from fleetplane.gateway.sse import SSEEvent, SSEParser


def _transport(body: bytes, status: int = 200) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body, headers={"content-type": "text/event-stream"})

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def openai_client(body: bytes, status: int = 200) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="test", base_url="http://gateway.test/v1", http_client=_transport(body, status), max_retries=0
    )


def anthropic_client(body: bytes, status: int = 200) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="test", base_url="http://gateway.test", http_client=_transport(body, status), max_retries=0
    )


@pytest.fixture
def openai_sdk() -> Callable[[bytes, int], openai.OpenAI]:
    """An OpenAI SDK client whose every request is answered with the given body and status."""
    return openai_client


@pytest.fixture
def anthropic_sdk() -> Callable[[bytes, int], anthropic.Anthropic]:
    """An Anthropic SDK client whose every request is answered with the given body and status."""
    return anthropic_client


@pytest.fixture
def openai_final() -> Callable[[bytes], ChatCompletion]:
    """The OpenAI SDK's ChatCompletionStreamState, fed through client.chat.completions.stream()."""

    def final(body: bytes) -> ChatCompletion:
        client = openai_client(body)
        with client.chat.completions.stream(
            model="m", messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            for _ in stream:
                pass
            return stream.get_final_completion()

    return final


@pytest.fixture
def anthropic_final() -> Callable[[bytes], Message]:
    """The Anthropic SDK's MessageStream accumulator, fed through client.messages.stream()."""

    def final(body: bytes) -> Message:
        client = anthropic_client(body)
        with client.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            for _ in stream:
                pass
            return stream.get_final_message()

    return final


@pytest.fixture
def parse_sse() -> Callable[[bytes], list[SSEEvent]]:
    def parse(body: bytes) -> list[SSEEvent]:
        parser = SSEParser()
        return parser.feed(body) + parser.finish()

    return parse
