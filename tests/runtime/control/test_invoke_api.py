"""The invoke API and the agents' admin API in process: a real agent answering on a unix socket behind
fake replicas; exact statuses and bodies for every bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fleetplane.runtime.reconciler import declared_tier
from fleetplane.runtime.replica import ReplicaState
from fleetplane.runtime.service import AgentService, RuntimeSettings

pytestmark = pytest.mark.anyio

ECHO = """\
run: {command: [python3, echo.py]}
replicas: {min: 2, max: 2}
trust: trusted
isolation: process
"""


async def echo(request: Request) -> JSONResponse:
    body = await request.json()
    text = body["message"]["parts"][0]["text"]
    return JSONResponse(
        {
            "id": body["taskId"],
            "status": {"state": "completed"},
            "artifacts": [{"parts": [{"kind": "text", "text": text.upper()}]}],
            "traceparent": request.headers.get("traceparent"),
        }
    )


@pytest.fixture
async def agent_socket(tmp_path: Path) -> AsyncIterator[str]:
    path = str(tmp_path / "agent.sock")
    app = Starlette(routes=[Route("/invoke", echo, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, uds=path, log_level="error", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
        await asyncio.sleep(0.01)
    yield path
    server.should_exit = server.force_exit = True  # kept-alive connections do not hold the test up
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def service(store, launcher, fleet, agent_socket, tmp_path) -> AsyncIterator[AgentService]:  # type: ignore[no-untyped-def]
    await fleet.apply(echo=ECHO)
    launcher.auto_ready = True
    launcher.endpoint = agent_socket
    settings = RuntimeSettings(
        fleet_dir=fleet.directory, root=tmp_path / "rt", invoke_wait=0.3, stop_grace=0.1
    )
    agents = AgentService(store, settings, launcher=launcher, tiers=declared_tier)
    await agents.start()
    try:
        yield agents
    finally:
        await agents.stop()


def client(agents: AgentService) -> httpx.AsyncClient:
    from starlette.applications import Starlette as App

    transport = httpx.ASGITransport(app=App(routes=agents.routes()))
    return httpx.AsyncClient(transport=transport, base_url="http://fleetplane")


def ask(text: str) -> dict[str, Any]:
    return {"message": {"role": "user", "parts": [{"kind": "text", "text": text}]}}


async def test_invoke_is_balanced_over_ready_replicas_with_the_trace_propagated(service) -> None:  # type: ignore[no-untyped-def]
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with client(service) as http:
        answers = [
            await http.post(
                "/agents/echo/invoke", json={**ask("hi"), "taskId": f"t{i}"}, headers={"traceparent": trace}
            )
            for i in range(4)
        ]
    assert [a.status_code for a in answers] == [200] * 4
    body = answers[0].json()
    assert body == {
        "id": "t0",
        "status": {"state": "completed"},
        "artifacts": [{"parts": [{"kind": "text", "text": "HI"}]}],
        "traceparent": trace,
    }
    assert answers[0].headers["traceparent"] == trace
    assert answers[0].headers["x-fleetplane-revision"] == "1"
    replicas = {a.headers["x-fleetplane-replica"] for a in answers}
    pool = service.reconciler.pools["echo"]
    assert replicas == {t.id for t in pool.replicas}
    assert [t.served for t in pool.replicas] == [2, 2] and pool.in_flight == 0


async def test_a_task_id_and_a_trace_are_made_when_missing(service) -> None:  # type: ignore[no-untyped-def]
    async with client(service) as http:
        answer = await http.post("/agents/echo/invoke", json=ask("x"))
    assert answer.status_code == 200
    assert len(answer.json()["id"]) == 32 and answer.headers["x-fleetplane-task-id"] == answer.json()["id"]
    assert answer.json()["traceparent"] == answer.headers["traceparent"]
    assert answer.headers["traceparent"].startswith("00-") and answer.headers["traceparent"].endswith("-01")


async def test_a_replica_that_refuses_is_skipped(service) -> None:  # type: ignore[no-untyped-def]
    pool = service.reconciler.pools["echo"]
    dead = pool.replicas[0]
    dead.replica.endpoint = "/nonexistent/dead.sock"
    async with client(service) as http:
        answers = [await http.post("/agents/echo/invoke", json=ask("x")) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert {a.headers["x-fleetplane-replica"] for a in answers} == {pool.replicas[1].id}


async def test_no_ready_replica_is_a_503_after_the_wait(service, launcher) -> None:  # type: ignore[no-untyped-def]
    for replica in launcher.running():
        replica.set(ReplicaState.UNREADY)
    async with client(service) as http:
        answer = await http.post("/agents/echo/invoke", json=ask("x"))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    message = answer.json()["error"]["message"]
    assert answer.json()["error"]["type"] == "unavailable"
    assert message.startswith(
        "agent 'echo' has no ready replica after 0.3s (progressing: revision 1: 0 ready of 2"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not JSON (line 1 column 2)"),
        (b"[1]", 'the body must be a JSON object: {"message": {"role": "user", "parts": [...]}}'),
        (b"{}", '"message" is missing or not an object: {"role": "user", "parts": [...]}'),
        (b'{"message": {"role": "system", "parts": []}}', 'message.role \'system\' is not "user" or "agent"'),
        (
            b'{"message": {"parts": []}}',
            'message.parts must be a non-empty list, e.g. [{"kind": "text", "text": "Hi"}]',
        ),
        (
            b'{"message": {"parts": [{"kind": "audio"}]}}',
            "message.parts[0].kind must be one of text, data, file",
        ),
        (b'{"message": {"parts": [{"kind": "text", "text": 3}]}}', "message.parts[0].text must be a string"),
        (
            b'{"message": {"parts": [{"kind": "data", "data": []}]}}',
            "message.parts[0].data must be an object",
        ),
        (
            b'{"message": {"parts": [{"kind": "text", "text": "a"}]}, "taskId": 5}',
            "taskId must be a non-empty string",
        ),
    ],
)
async def test_bad_invoke_input_is_a_400_that_reaches_no_replica(service, body: bytes, message: str) -> None:  # type: ignore[no-untyped-def]
    async with client(service) as http:
        answer = await http.post("/agents/echo/invoke", content=body)
    assert answer.status_code == 400
    assert answer.json() == {"error": {"type": "invalid_request", "message": message}}
    assert sum(t.served for t in service.reconciler.pools["echo"].replicas) == 0


async def test_unknown_agent_is_a_404(service) -> None:  # type: ignore[no-untyped-def]
    async with client(service) as http:
        invoke = await http.post("/agents/nobody/invoke", json=ask("x"))
        undo = await http.post("/admin/agents/nobody/rollout/undo")
        show = await http.get("/admin/agents/nobody")
    expected = {"error": {"type": "not_found", "message": "no agent named 'nobody' is applied"}}
    assert (invoke.status_code, invoke.json()) == (404, expected)
    assert (undo.status_code, undo.json()) == (404, expected)
    assert (show.status_code, show.json()) == (404, expected)


async def test_rollout_admin_api(service, fleet) -> None:  # type: ignore[no-untyped-def]
    async with client(service) as http:
        nothing = await http.post("/admin/agents/echo/rollout/undo")
        assert (nothing.status_code, nothing.json()) == (
            409,
            {
                "error": {
                    "type": "conflict",
                    "message": "agent 'echo' has only revision 1; there is nothing to undo to",
                }
            },
        )
        for body, message in [
            (b"[]", 'the body is {} or {"to": REVISION_NUMBER}'),
            (b'{"to": "one"}', "'to' must be a revision number (>= 1), not 'one'"),
            (b'{"to": 0}', "'to' must be a revision number (>= 1), not 0"),
            (b"{to", "the body is not JSON (line 1 column 2)"),
        ]:
            bad = await http.post("/admin/agents/echo/rollout/undo", content=body)
            assert (bad.status_code, bad.json()) == (
                400,
                {"error": {"type": "invalid_request", "message": message}},
            )
        await fleet.apply(echo=ECHO.replace("max: 2}", "max: 2}\nenv: {V: '2'}"))
        await service.reconciler.sync()
        undone = await http.post("/admin/agents/echo/rollout/undo", json={"to": 1})
        assert undone.status_code == 200 and undone.json()["revision"] == 3
        rollout = (await http.get("/admin/agents/echo/rollout")).json()
        listed = (await http.get("/admin/agents")).json()
    assert [(h["revision"], h["cause"]) for h in rollout["history"]] == [(2, "apply"), (3, "undo")]
    assert rollout["drift"] is True and rollout["revision"] == 3
    assert [a["name"] for a in listed["agents"]] == ["echo"]


async def test_clients_of_gone_replicas_are_closed(service) -> None:
    service.balancer.prune_above = 1
    async with client(service) as http:
        assert (await http.post("/agents/echo/invoke", json=ask("x"))).status_code == 200
        pool = service.reconciler.pools["echo"]
        for t in pool.replicas:  # every replica moves to a socket of its own; the old one is gone
            t.replica.endpoint = t.replica.endpoint + ".moved"
        before = set(service.balancer._clients)
    assert before and all(not e.endswith(".moved") for e in before)
    for t in pool.replicas:
        await service.balancer._client(t.replica.endpoint)
    assert set(service.balancer._clients) == {t.replica.endpoint for t in pool.replicas}


async def test_with_telemetry_each_invoke_is_an_invoke_agent_span_parenting_the_agent(
    store, launcher, fleet, agent_socket, tmp_path
) -> None:
    from fleetplane.telemetry.processors import InMemorySink
    from fleetplane.telemetry.setup import Telemetry

    await fleet.apply(echo=ECHO)
    launcher.auto_ready = True
    launcher.endpoint = agent_socket
    sink = InMemorySink()
    telemetry = Telemetry.create("fleetplane-test", span_sinks=[sink], otlp=False, environ={})
    settings = RuntimeSettings(fleet_dir=fleet.directory, root=tmp_path / "rt", invoke_wait=0.3)
    agents = AgentService(store, settings, launcher=launcher, tiers=declared_tier, spans=telemetry.spans)
    await agents.start()
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    try:
        async with client(agents) as http:
            answer = await http.post(
                "/agents/echo/invoke", json={**ask("hi"), "taskId": "t9"}, headers={"traceparent": caller}
            )
    finally:
        await agents.stop()
    telemetry.force_flush()
    (span,) = [s for s in sink.spans if s.name == "invoke_agent echo"]
    context = span.get_span_context()
    assert f"{context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"  # the caller's trace
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"
    assert span.attributes["gen_ai.agent.name"] == "echo" and span.attributes["fleetplane.task.id"] == "t9"
    assert span.attributes["fleetplane.replica"] == answer.headers["x-fleetplane-replica"]
    # The agent was given this span as its parent, and the caller gets it back.
    sent = answer.json()["traceparent"]
    assert (
        sent
        == f"00-0af7651916cd43dd8448eb211c80319c-{context.span_id:016x}-01"
        == answer.headers["traceparent"]
    )
