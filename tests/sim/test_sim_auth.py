"""`--require-key`: the right key works with either SDK; anything else is a 401 in the provider's shape."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from fleetplane.sim.process import SimProcess

KEY = "sk-sim-correct-key"


@pytest.fixture(scope="module")
def keyed_sim() -> Iterator[SimProcess]:
    with SimProcess({"instant": True, "models": {"m": {}}}, require_key=KEY) as process:
        yield process


def test_right_key_works_with_both_sdks(keyed_sim: SimProcess) -> None:
    reply = openai.OpenAI(
        base_url=keyed_sim.base_url + "/v1", api_key=KEY, max_retries=0
    ).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    message = anthropic.Anthropic(base_url=keyed_sim.base_url, api_key=KEY, max_retries=0).messages.create(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content


def test_wrong_key_openai(keyed_sim: SimProcess) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        openai.OpenAI(
            base_url=keyed_sim.base_url + "/v1", api_key="sk-wrong-key-1234", max_retries=0
        ).models.list()
    assert caught.value.status_code == 401
    assert caught.value.body == {
        "message": "Incorrect API key provided: sk-**********1234. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }


def test_missing_key_openai(keyed_sim: SimProcess) -> None:
    response = httpx.post(keyed_sim.url("/v1/chat/completions"), json={"model": "m", "messages": []})
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("You didn't provide an API key.")
    assert response.json()["error"]["code"] is None


def test_wrong_key_anthropic(keyed_sim: SimProcess) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        anthropic.Anthropic(base_url=keyed_sim.base_url, api_key="nope", max_retries=0).messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}


def test_x_api_key_and_bearer_both_accepted(keyed_sim: SimProcess) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert (
        httpx.post(keyed_sim.url("/v1/chat/completions"), json=body, headers={"x-api-key": KEY}).status_code
        == 200
    )
    bearer = {"authorization": f"Bearer {KEY}"}
    assert httpx.post(keyed_sim.url("/v1/chat/completions"), json=body, headers=bearer).status_code == 200


def test_admin_api_needs_no_key(keyed_sim: SimProcess) -> None:
    assert keyed_sim.admin("GET", "/sim/health")["status"] == "ok"
    stats = keyed_sim.stats()
    assert stats["models"]["(unrouted)"]["requests"]["401"] >= 1
