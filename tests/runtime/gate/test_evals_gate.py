"""The top floor's rollout gate (`cli.rollout_gate.EvalsRolloutGate`) in process: the suite runs against
each revision through the invoke API, pinned with x-fleetplane-revision, both runs are stored, and the
evals wing's gate blocks a real regression and passes an equal revision."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fleetplane.cli.rollout_gate import EvalsRolloutGate, GateSetupError
from fleetplane.evals.results import RunRepository
from fleetplane.runtime.gate import GateRequest

pytestmark = pytest.mark.anyio

CASES = 40
SUITE = """\
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: agent-bot}
spec:
  target: {agent: bot}
  dimensions:
    - name: correctness
      gate: {margin: 0.05}
      scorers: [{type: exact}]
    - name: latency
      goal: minimize
      scorers: [{type: latency}]
  caseFiles: [{path: cases.jsonl}]
"""
OTHER = SUITE.replace("agent-bot", "model-suite").replace("{agent: bot}", "{model: chat}")


def fleet_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "suites"
    directory.mkdir()
    (directory / "suite.yaml").write_text(SUITE + "---\n" + OTHER)
    lines = [f'{{"id": "c{i}", "input": "q{i}", "expected": "a{i}"}}' for i in range(CASES)]
    (directory / "cases.jsonl").write_text("\n".join(lines) + "\n")
    return directory


def agent_app(wrong_from: dict[str, int], seen: list[str]) -> Starlette:
    """Revision N answers case i right while i < wrong_from[N] (all of them when N is not listed)."""

    async def invoke(request: Request) -> Response:
        revision = request.headers.get("x-fleetplane-revision", "none")
        seen.append(revision)
        body = await request.json()
        i = int(body["message"]["parts"][0]["text"][1:])
        text = f"a{i}" if i < wrong_from.get(revision, CASES) else "I cannot say."
        task = {
            "kind": "task",
            "id": "t",
            "status": {"state": "completed"},
            "artifacts": [{"parts": [{"kind": "text", "text": text}]}],
        }
        return JSONResponse(task, headers={"x-fleetplane-revision": revision})

    return Starlette(routes=[Route("/agents/{name}/invoke", invoke, methods=["POST"])])


def gate(store, tmp_path: Path, app: Starlette) -> EvalsRolloutGate:  # type: ignore[no-untyped-def]
    def client(headers: dict[str, str]) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app)
        return httpx.AsyncClient(transport=transport, base_url="http://fleetplane", headers=headers)

    return EvalsRolloutGate(store, fleet_dir(tmp_path), "http://fleetplane", seed=7, client=client)


REQUEST = GateRequest("bot", "agent-bot", None, candidate=2, baseline=1)


async def test_a_regressed_revision_is_blocked_and_both_runs_are_stored(store, tmp_path) -> None:
    seen: list[str] = []
    verdict = await gate(store, tmp_path, agent_app({"2": 10}, seen))(REQUEST)
    assert seen == ["1"] * CASES + ["2"] * CASES  # the serving revision first, each run pinned
    assert not verdict.passed
    assert verdict.reason.startswith("regresses on correctness 1.00 -> 0.25, ")
    runs = await RunRepository(store).runs("agent-bot")
    assert sorted((r.target, r.trigger, r.status, r.options["revision"]) for r in runs) == [
        ("agent:bot@revision-1", "rollout", "done", 1),
        ("agent:bot@revision-2", "rollout", "done", 2),
    ]
    by_revision = {r.options["revision"]: r for r in runs}
    assert verdict.reason.endswith(f"(runs {by_revision[1].id[:12]} -> {by_revision[2].id[:12]})")


async def test_an_equal_revision_passes(store, tmp_path) -> None:
    verdict = await gate(store, tmp_path, agent_app({}, []))(REQUEST)
    assert verdict.passed
    assert verdict.reason.startswith("no gated dimension regresses: correctness pass (runs ")


async def test_a_small_drop_within_the_agents_margin_passes(store, tmp_path) -> None:
    lenient = GateRequest("bot", "agent-bot", 0.9, candidate=2, baseline=1)
    verdict = await gate(store, tmp_path, agent_app({"2": 30}, []))(lenient)
    assert verdict.passed


async def test_a_revision_that_answers_nothing_is_blocked(store, tmp_path) -> None:
    async def broken(request: Request) -> Response:
        if request.headers["x-fleetplane-revision"] == "2":
            return JSONResponse({"error": {"type": "unavailable", "message": "no ready replica"}}, 503)
        return await agent_app({}, []).router.routes[0].endpoint(request)  # type: ignore[attr-defined, no-any-return]

    app = Starlette(routes=[Route("/agents/{name}/invoke", broken, methods=["POST"])])
    verdict = await gate(store, tmp_path, app)(REQUEST)
    assert not verdict.passed
    assert verdict.reason == "revision 2 answered none of the cases (first error: HTTP 503: no ready replica)"


async def test_a_suite_of_another_target_cannot_gate_the_agent(store, tmp_path) -> None:
    wrong = GateRequest("bot", "model-suite", None, candidate=2, baseline=1)
    with pytest.raises(GateSetupError) as caught:
        await gate(store, tmp_path, agent_app({}, []))(wrong)
    assert str(caught.value) == "suite 'model-suite' targets model:chat, not agent:bot"
