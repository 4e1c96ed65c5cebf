"""`x-fleetplane-revision` on the invoke API: a held surge replica takes only invokes pinned to its
revision, ordinary ones keep going to the serving revision; a bad or unknown revision is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fleetplane.runtime.gate import GateRequest, GateVerdict
from fleetplane.runtime.reconciler import declared_tier
from fleetplane.runtime.service import AgentService, RuntimeSettings

pytestmark = pytest.mark.anyio

GATED = """\
run: {command: [python3, echo.py]}
replicas: {min: 2, max: 2}
trust: trusted
isolation: process
env: {GREETING: hello}
rollout: {gate: {suite: agent-echo}}
"""


class PendingGate:
    """Never answers: the rollout stays held for the whole test."""

    def __init__(self) -> None:
        self.asked: list[GateRequest] = []

    async def __call__(self, request: GateRequest) -> GateVerdict:
        self.asked.append(request)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def answer(request: Request) -> JSONResponse:
    body = await request.json()
    task = {"kind": "task", "id": body["taskId"], "status": {"state": "completed"}, "artifacts": []}
    return JSONResponse(task)


@pytest.fixture
async def agent_socket(tmp_path: Path) -> AsyncIterator[str]:
    path = str(tmp_path / "agent.sock")
    app = Starlette(routes=[Route("/invoke", answer, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, uds=path, log_level="error", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
        await asyncio.sleep(0.01)
    yield path
    server.should_exit = server.force_exit = True
    await asyncio.wait_for(task, 10)


async def test_a_held_surge_replica_takes_only_pinned_invokes(
    store, launcher, fleet, agent_socket, tmp_path
) -> None:
    await fleet.apply(echo=GATED)
    launcher.auto_ready = True
    launcher.endpoint = agent_socket
    settings = RuntimeSettings(
        fleet_dir=fleet.directory, root=tmp_path / "rt", invoke_wait=0.3, stop_grace=0.1
    )
    gate = PendingGate()
    agents = AgentService(store, settings, launcher=launcher, tiers=declared_tier, gate=gate)
    await agents.start()
    try:
        assert agents.reconciler is not None
        await fleet.apply(echo=GATED.replace("hello", "bonjour"))
        await agents.reconciler.sync()
        await agents.reconciler.sync()
        pool = agents.reconciler.pools["echo"]
        [surge] = pool.current()
        assert surge.held and surge.ready
        await asyncio.sleep(0)  # the gate's task takes its first step
        assert gate.asked == [GateRequest("echo", "agent-echo", None, candidate=2, baseline=1)]
        transport = httpx.ASGITransport(app=Starlette(routes=agents.routes()))
        message = {"message": {"role": "user", "parts": [{"kind": "text", "text": "hi"}]}}
        async with httpx.AsyncClient(transport=transport, base_url="http://fleetplane") as client:
            plain = [await client.post("/agents/echo/invoke", json=message) for _ in range(4)]
            assert [r.headers["x-fleetplane-revision"] for r in plain] == ["1"] * 4
            pinned = await client.post(
                "/agents/echo/invoke", json=message, headers={"x-fleetplane-revision": "2"}
            )
            assert pinned.status_code == 200
            assert (pinned.headers["x-fleetplane-revision"], pinned.headers["x-fleetplane-replica"]) == (
                "2",
                surge.id,
            )
            old = await client.post(
                "/agents/echo/invoke", json=message, headers={"x-fleetplane-revision": "1"}
            )
            assert old.headers["x-fleetplane-revision"] == "1"
            bad = await client.post(
                "/agents/echo/invoke", json=message, headers={"x-fleetplane-revision": "two"}
            )
            assert (bad.status_code, bad.json()) == (
                400,
                {
                    "error": {
                        "type": "invalid_request",
                        "message": "x-fleetplane-revision 'two' is not a revision number (>= 1)",
                    }
                },
            )
            none = await client.post(
                "/agents/echo/invoke", json=message, headers={"x-fleetplane-revision": "9"}
            )
            assert (none.status_code, none.headers["retry-after"], none.json()) == (
                503,
                "1",
                {
                    "error": {
                        "type": "unavailable",
                        "message": "agent 'echo' has no ready replica of revision 9 after 0.3s",
                    }
                },
            )
            rollout = await client.get("/admin/agents/echo/rollout")
            body = rollout.json()
            assert (body["status"], body["gate"]["state"], body["message"]) == (
                "progressing",
                "running",
                "revision 2: rollout gate (agent-echo) running against revision 1, which serves",
            )
        assert surge.served == 1
    finally:
        await agents.stop()
