"""The declarative runner's own logic: its configuration from the sandbox's environment, the step and
token limits, what it sends the gateway (instructions as the system message, their version as the prompt
version, the caller's traceparent), and a gateway refusal as a failed task. (Through the real gateway and
sandbox: test_agents_e2e.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from fleetplane.runtime.runner.app import build_app
from fleetplane.runtime.runner.config import RunnerConfigError, from_env

pytestmark = pytest.mark.anyio

SPEC = {
    "name": "faq",
    "model": "chat",
    "instructions": "Be brief.",
    "instructions_version": "7",
    "max_steps": 3,
    "max_tokens": 100,
}
ENV = {
    "FLEETPLANE_AGENT_SPEC": orjson.dumps(SPEC).decode(),
    "OPENAI_BASE_URL": "http://127.0.0.1:4000/v1",
    "OPENAI_API_KEY": "sk-placeholder",
    "PORT": "8080",
}


def test_configuration_from_the_sandbox_environment() -> None:
    config = from_env(ENV)
    assert (config.name, config.model, config.instructions_version, config.max_steps, config.max_tokens) == (
        "faq",
        "chat",
        "7",
        3,
        100,
    )
    assert (config.gateway_url, config.api_key, config.port) == (
        "http://127.0.0.1:4000/v1",
        "sk-placeholder",
        8080,
    )
    assert from_env({**ENV, "OPENAI_BASE_URL": "http://gw:1"}).gateway_url == "http://gw:1/v1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"FLEETPLANE_AGENT_SPEC": ""},
            "$FLEETPLANE_AGENT_SPEC is not set: the runner serves a declarative Agent spec",
        ),
        ({"FLEETPLANE_AGENT_SPEC": "{"}, "$FLEETPLANE_AGENT_SPEC is not JSON (line 1 column 2)"),
        ({"FLEETPLANE_AGENT_SPEC": "{}"}, "$FLEETPLANE_AGENT_SPEC lacks a field or has a wrong one: 'name'"),
        ({"OPENAI_BASE_URL": ""}, "$OPENAI_BASE_URL is not set: where is the gateway?"),
        ({"PORT": "http"}, "$PORT='http' is not a port number"),
    ],
)
def test_configuration_errors(change: dict[str, str], message: str) -> None:
    with pytest.raises(RunnerConfigError) as error:
        from_env({**ENV, **change})
    assert str(error.value) == message


class Gateway:
    """Answers chat completions with scripted replies and records what it was sent."""

    def __init__(self, replies: list[tuple[int, dict[str, Any]]]) -> None:
        self.replies = replies
        self.sent: list[tuple[dict[str, str], dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((dict(request.headers), orjson.loads(request.content)))
        status, body = self.replies.pop(0)
        return httpx.Response(status, json=body)


def completion(text: str, finish: str, tokens: int) -> tuple[int, dict[str, Any]]:
    return 200, {
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"total_tokens": tokens},
    }


async def invoke(gateway: Gateway, text: str = "Hi", headers: dict[str, str] | None = None) -> httpx.Response:
    app = build_app(from_env(ENV), transport=httpx.MockTransport(gateway))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agent") as http:
        body = {"message": {"role": "user", "parts": [{"kind": "text", "text": text}]}, "taskId": "t1"}
        return await http.post("/invoke", json=body, headers=headers or {})


async def test_one_step_with_the_versioned_instructions_and_the_trace() -> None:
    gateway = Gateway([completion("Hello.", "stop", 12)])
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    answer = await invoke(gateway, headers={"traceparent": trace})
    assert answer.status_code == 200
    assert answer.json() == {
        "kind": "task",
        "id": "t1",
        "status": {"state": "completed"},
        "metadata": {"model": "chat", "instructionsVersion": "7", "steps": 1, "tokens": 12},
        "artifacts": [{"artifactId": "t1-answer", "parts": [{"kind": "text", "text": "Hello."}]}],
    }
    headers, body = gateway.sent[0]
    assert body == {
        "model": "chat",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "max_tokens": 100,
    }
    assert (headers["x-fleetplane-prompt-name"], headers["x-fleetplane-prompt-version"]) == ("faq", "7")
    assert headers["traceparent"] == trace and headers["authorization"] == "Bearer sk-placeholder"


async def test_a_reply_cut_at_the_limit_continues_until_steps_or_tokens_run_out() -> None:
    gateway = Gateway(
        [
            completion("part 1", "length", 60),
            completion("part 2", "length", 30),
            completion("part 3", "length", 30),
        ]
    )
    answer = await invoke(gateway)
    assert answer.json()["metadata"] == {
        "model": "chat",
        "instructionsVersion": "7",
        "steps": 3,
        "tokens": 120,
    }
    assert [body["max_tokens"] for _, body in gateway.sent] == [100, 40, 10]  # only what is left
    gateway = Gateway([completion("a", "length", 70), completion("b", "length", 40)])
    answer = await invoke(gateway)
    assert (
        answer.json()["metadata"]["steps"] == 2 and answer.json()["artifacts"][0]["parts"][0]["text"] == "b"
    )


async def test_a_gateway_refusal_is_a_failed_task() -> None:
    gateway = Gateway([(429, {"error": {"message": "quota"}})])
    answer = await invoke(gateway)
    assert answer.status_code == 502
    task = answer.json()
    assert task["status"]["state"] == "failed" and task["metadata"]["gatewayStatus"] == 429
    assert task["status"]["message"]["parts"][0]["text"].startswith("the gateway answered 429: ")
