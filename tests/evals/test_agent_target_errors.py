"""An agent's failed task as the runtime sends it (a 5xx with the task as its body) fails its case with the
task's own message; a server error without a task, or an answer that is not JSON, fails it with the
server's words."""

from __future__ import annotations

import asyncio

import httpx

from fleetplane.evals.cases import Case
from fleetplane.evals.targets import AgentTarget

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def handler(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/agents/faq/invoke":  # what the declarative runner answers when a step fails
        task = {
            "kind": "task",
            "id": "t-1",
            "status": {
                "state": "failed",
                "message": {"role": "agent", "parts": [{"kind": "text", "text": "the model refused: quota"}]},
            },
        }
        return httpx.Response(502, json=task, headers={"traceparent": TRACE})
    if request.url.path == "/agents/plain/invoke":
        return httpx.Response(200, text="<html>ok</html>")
    return httpx.Response(404, json={"error": {"type": "not_found", "message": "no agent named ghost"}})


def test_failed_tasks_and_server_errors_fail_their_case_with_what_went_wrong() -> None:
    async def scenario() -> list[tuple[str | None, str | None]]:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://fp") as client:
            answers = [
                await AgentTarget(client, name)(Case("c", "hi"), 0) for name in ("faq", "plain", "ghost")
            ]
        return [(a.error, a.trace_id) for a in answers]

    assert asyncio.run(scenario()) == [
        ("the agent's task ended failed: the model refused: quota", "0af7651916cd43dd8448eb211c80319c"),
        ("HTTP 200: <html>ok</html>", None),
        ("HTTP 404: no agent named ghost", None),
    ]
