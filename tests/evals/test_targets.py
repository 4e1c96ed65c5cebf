"""How targets turn cases into requests and answers into text, and what a model call costs."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from fleetplane.evals.cases import Case
from fleetplane.evals.targets import AgentTarget, ChatTarget, Price, agent_output, chat_messages


def test_case_inputs_become_chat_messages() -> None:
    assert chat_messages("Hi", None) == [{"role": "user", "content": "Hi"}]
    assert chat_messages("Hi", "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    given = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert chat_messages(given, "ignored: the case has its own") == given
    assert chat_messages({"text": "late", "n": 2}, None) == [
        {"role": "user", "content": '{"n": 2, "text": "late"}'}
    ]


def test_agent_answers_are_read_from_message_parts() -> None:
    text = {
        "message": {"role": "agent", "parts": [{"kind": "text", "text": "a"}, {"kind": "text", "text": "b"}]}
    }
    assert agent_output(text) == ("a\nb", None)
    data = {"message": {"role": "agent", "parts": [{"kind": "data", "data": {"label": "refund"}}]}}
    assert agent_output(data) == ('{"label": "refund"}', {"label": "refund"})
    assert agent_output({"output": "plain"}) == ("plain", None)
    task = {
        "id": "t1",
        "status": {"state": "completed"},
        "artifacts": [
            {"parts": [{"kind": "text", "text": "HELLO"}]},
            {"parts": [{"kind": "text", "text": "!"}]},
        ],
    }
    assert agent_output(task) == ("HELLO\n!", None)
    waiting = {
        "status": {
            "state": "input-required",
            "message": {"parts": [{"kind": "text", "text": "Which order?"}]},
        }
    }
    assert agent_output(waiting) == ("Which order?", None)


def test_cost_uses_the_serving_deployments_own_price() -> None:
    target = ChatTarget(
        httpx.AsyncClient(),
        "chat-large",
        price=Price(2.5, 10.0),
        deployment_prices={"sim/sim-medium": Price(0.4, 1.6)},
    )
    assert target.cost("sim/sim-large", 1000, 100) == pytest.approx((1000 * 2.5 + 100 * 10.0) / 1e6)
    assert target.cost("sim/sim-medium", 1000, 100) == pytest.approx((1000 * 0.4 + 100 * 1.6) / 1e6)
    assert ChatTarget(httpx.AsyncClient(), "free").cost("x/y", 10, 10) is None


def test_the_chat_and_agent_targets_speak_http() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/chat/completions":
            body = {
                "choices": [{"message": {"content": "Paris"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 3},
            }
            tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            return httpx.Response(
                200, json=body, headers={"x-fleetplane-deployment": "sim/sim-small", "traceparent": tp}
            )
        if request.url.path == "/agents/broken/invoke":
            failed = {
                "status": {
                    "state": "failed",
                    "message": {"parts": [{"kind": "text", "text": "tool crashed"}]},
                }
            }
            return httpx.Response(200, json=failed)
        return httpx.Response(503, json={"error": {"type": "unavailable", "message": "no ready replica"}})

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://fp") as client:
            chat = ChatTarget(client, "solo", system="Be brief.", max_tokens=50, price=Price(1.0, 2.0))
            answer = await chat(Case("c", "Capital of France?"), epoch=2)
            assert (answer.output, answer.model, answer.deployment) == ("Paris", "solo", "sim/sim-small")
            assert (answer.input_tokens, answer.output_tokens) == (12, 3)
            assert answer.cost_usd == pytest.approx((12 * 1.0 + 3 * 2.0) / 1e6)
            assert answer.trace_id == "0af7651916cd43dd8448eb211c80319c"
            assert answer.finish_reason == "stop" and answer.error is None
            sent = seen[0].read()
            assert b'"seed":2' in sent.replace(b" ", b"") and b'"max_tokens":50' in sent.replace(b" ", b"")
            failed = await AgentTarget(client, "triage")(Case("c", {"text": "x"}), 0)
            assert failed.error == "HTTP 503: no ready replica"
            assert seen[1].url.path == "/agents/triage/invoke"
            assert (
                seen[1].read() == b'{"message":{"role":"user","parts":[{"kind":"data","data":{"text":"x"}}]}}'
            )
            broken = await AgentTarget(client, "broken")(Case("c", "hi"), 0)
            assert broken.error == "the agent's task ended failed: tool crashed"

    asyncio.run(scenario())
