"""The declarative runner's tool loop against the real gateway, with the simulator as its upstream: the
model is offered the agent's skills, calls one (the `tool` directive makes it deterministic), the runner
runs it through the server and the model answers from the tool's result; each call is an `execute_tool`
span in the caller's trace. (The sandbox is not the point here: the runner reaches the server in process.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from agentfleet import Server, server

from fleetplane.runtime.runner.app import build_app
from fleetplane.runtime.runner.config import RunnerConfig
from fleetplane.sim.process import SimProcess
from fleetplane.telemetry.processors import InMemorySink
from fleetplane.telemetry.setup import Telemetry

pytestmark = pytest.mark.anyio

SIM = {
    "seed": 5,
    "instant": True,
    "models": {"sim-small": {"output_tokens": {"mean": 12, "min": 4, "max": 20}}},
}
CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with SimProcess(SIM) as process:
        yield process


class Recorded(httpx.AsyncBaseTransport):
    """The server in process, with every request the runner sends it kept (path, JSON body)."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.sent: list[tuple[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append((request.url.path, orjson.loads(body) if body else None))
        return await self.inner.handle_async_request(request)


def runner(fleet: Server, transport: Recorded, sink: InMemorySink, **change: Any) -> Any:
    config = RunnerConfig(
        name="faq",
        model="solo",
        instructions="Answer briefly; use your tools.",
        instructions_version="1",
        max_steps=4,
        max_tokens=2000,
        gateway_url="http://server/v1",
        api_key=fleet.keys["faq-key"],
        port=0,
        skills=("summarize@^1", "send-refund@^2", "missing-skill"),
    )
    for name, value in change.items():
        object.__setattr__(config, name, value)
    telemetry = Telemetry.create("runner-test", span_sinks=[sink], otlp=False, environ={})
    return build_app(config, transport=transport, spans=telemetry.spans), telemetry


async def ask(app: Any, text: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agent") as http:
        body = {"message": {"role": "user", "parts": [{"kind": "text", "text": text}]}, "taskId": "t1"}
        return await http.post("/invoke", json=body, headers={"traceparent": CALLER})


async def test_the_model_calls_a_skill_and_answers_from_its_result(
    tmp_path: Path, sqlite_url: str, sim: SimProcess
) -> None:
    sink = InMemorySink()
    async with server(tmp_path, sqlite_url, sim.base_url) as fleet:
        transport = Recorded(fleet.app)
        app, telemetry = runner(fleet, transport, sink)
        answer = await ask(app, "Summarise: the parcel is late again. [[sim tool=summarize]]")
    assert answer.status_code == 200, answer.text
    task = answer.json()
    assert task["status"]["state"] == "completed"
    assert (task["metadata"]["steps"], task["metadata"]["toolCalls"]) == (2, 1)
    assert task["artifacts"][0]["parts"][0]["text"]  # the model's answer after reading the result
    paths = [path for path, _ in transport.sent]
    assert paths == [
        "/v1/skills",
        "/v1/chat/completions",
        "/v1/skills/summarize/invoke",
        "/v1/chat/completions",
    ]
    first, second = transport.sent[1][1], transport.sent[3][1]
    assert [t["function"]["name"] for t in first["tools"]] == ["send-refund", "summarize"]
    call_message = second["messages"][2]
    (tool_call,) = call_message["tool_calls"]
    assert call_message["role"] == "assistant" and tool_call["function"]["name"] == "summarize"
    invoked = transport.sent[2][1]
    assert invoked == {
        "arguments": tool_call["function"]["arguments"],
        "callId": tool_call["id"],
        "runId": "t1",
    }
    result = second["messages"][3]
    assert (result["role"], result["tool_call_id"]) == ("tool", tool_call["id"])
    output = orjson.loads(result["content"])
    assert set(output) == {"summary", "words"} and output["words"] == len(output["summary"].split())
    assert second["tools"] == first["tools"]
    assert telemetry.force_flush()
    (span,) = [s for s in sink.spans if s.name == "execute_tool summarize"]
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"
    assert span.attributes["gen_ai.tool.call.id"] == tool_call["id"]
    telemetry.shutdown()


async def test_a_refused_tool_call_is_the_models_to_read_not_the_runs_end(
    tmp_path: Path, sqlite_url: str, sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "refunds.jsonl"
    monkeypatch.setenv("REFUNDS_LEDGER", str(ledger))
    sink = InMemorySink()
    async with server(tmp_path, sqlite_url, sim.base_url) as fleet:
        transport = Recorded(fleet.app)
        app, telemetry = runner(fleet, transport, sink)
        answer = await ask(app, "Refund order 7. [[sim tool=send-refund]]")
    assert answer.status_code == 200, answer.text
    task = answer.json()
    assert task["status"]["state"] == "completed"
    assert (task["metadata"]["steps"], task["metadata"]["toolCalls"]) == (2, 1)
    second = transport.sent[3][1]
    (tool_call,) = second["messages"][2]["tool_calls"]
    order = orjson.loads(tool_call["function"]["arguments"])["order"]
    # The simulator's arguments follow the schema's types but not its pattern: the server's 400 is what the
    # model reads as the tool's answer, and the run goes on to the model's next step.
    assert orjson.loads(second["messages"][3]["content"]) == {
        "status": 400,
        "error": {
            "type": "invalid_input",
            "message": "skill send-refund@2.1.0: input.order: does not match the pattern '^ord-[0-9]+$', "
            f"found {orjson.dumps(order).decode()}",
        },
    }
    assert not ledger.exists()
    assert telemetry.force_flush()
    (span,) = [s for s in sink.spans if s.name == "execute_tool send-refund"]
    assert span.attributes["error.type"] == "tool_error"
    telemetry.shutdown()


async def test_without_skills_no_tools_are_fetched_or_offered(
    tmp_path: Path, sqlite_url: str, sim: SimProcess
) -> None:
    sink = InMemorySink()
    async with server(tmp_path, sqlite_url, sim.base_url) as fleet:
        transport = Recorded(fleet.app)
        app, telemetry = runner(fleet, transport, sink, skills=())
        answer = await ask(app, "Hello.")
    assert answer.status_code == 200
    assert [path for path, _ in transport.sent] == ["/v1/chat/completions"]
    assert "tools" not in transport.sent[0][1] and "toolCalls" not in answer.json()["metadata"]
    telemetry.shutdown()


def test_the_example_faq_agent_hands_its_skills_to_the_runner() -> None:
    from fleetplane.manifests.agent import Agent
    from fleetplane.manifests.loader import load
    from fleetplane.runtime.runner.config import from_env
    from fleetplane.runtime.specs import environment

    fleet = Path(__file__).parents[2] / "examples" / "fleet"
    (faq,) = [a for a in load(fleet).of_kind(Agent) if a.name == "faq"]
    env = {**environment(faq), "OPENAI_BASE_URL": "http://127.0.0.1:4000", "OPENAI_API_KEY": "placeholder"}
    config = from_env(env)
    assert (config.skills, config.max_steps, config.gateway_url) == (
        ("summarize@^1",),
        3,
        "http://127.0.0.1:4000/v1",
    )


async def test_a_prompt_skill_calls_the_gateway_with_the_agents_own_key(
    tmp_path: Path, sqlite_url: str, sim: SimProcess
) -> None:
    from sqlalchemy import select

    from fleetplane.store.tables import usage_records

    async with server(tmp_path, sqlite_url, sim.base_url, listen=True) as fleet:
        async with fleet.client() as http:
            answer = await http.post(
                "/v1/skills/classify-ticket/invoke",
                json={"arguments": {"text": "I was charged twice"}, "callId": "call_1"},
                headers={"authorization": f"Bearer {fleet.keys['triage-key']}"},
            )
        await fleet.runtime.ledger.flush()
        async with fleet.store.engine.connect() as conn:
            charged = (await conn.execute(select(usage_records.c.agent, usage_records.c.model))).all()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["skill"], body["version"]) == ("classify-ticket", "0.3.0")
    assert set(body["output"]) == {"text"} and body["output"]["text"]
    assert [tuple(row) for row in charged] == [("triage", "chat-small")]  # governed as the agent's call
