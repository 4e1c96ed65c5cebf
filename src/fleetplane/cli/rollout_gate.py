"""The evals wing's statistical gate in the shape agent rollouts ask for (`runtime.gate.RolloutGate`).

The top floor composes the two wings: `fleetplane up` hands `EvalsRolloutGate` to the agents' service,
so an Agent whose spec names `rollout.gate: {suite, margin?}` rolls a new revision out only when that
suite does not regress on it. The suite (an `EvalSuite` of the fleet whose target is this agent) is run
twice through this server's invoke API, each run pinned to one revision with `x-fleetplane-revision`: the
serving revision (baseline), then the new one (candidate, its surge replica, which takes no other traffic
meanwhile). Both runs are stored like any other (`trigger: rollout`), so `fleetplane eval compare A B`
shows them; `fleetplane.evals.gate.evaluate_gate` judges them on the suite's gated dimensions (all of
them when none is gated), the agent's margin overriding theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from fleetplane.cli.evals import _gates, _judges
from fleetplane.evals.cases import Case
from fleetplane.evals.gate import GatePolicy, GateReport, evaluate_gate
from fleetplane.evals.results import Answer, Run, RunRepository
from fleetplane.evals.runner import run_suite
from fleetplane.evals.suites import LoadedSuite, load_suite
from fleetplane.evals.targets import AgentTarget
from fleetplane.runtime.gate import GateRequest, GateVerdict
from fleetplane.store.db import Store

REVISION_HEADER = "x-fleetplane-revision"
KEY_NAME = "fleetplane-rollout-gate"  # the virtual key its judges call the gateway with

ClientFactory = Callable[[dict[str, str]], httpx.AsyncClient]


class GateSetupError(Exception):
    """The suite cannot gate this agent (not found, another target, no answer from the serving one)."""


@dataclass
class PinnedAgent:
    """The agent's invoke API, every call pinned to one revision (the client carries the header)."""

    inner: AgentTarget
    revision: int

    @property
    def name(self) -> str:
        return f"{self.inner.name}@revision-{self.revision}"

    async def __call__(self, case: Case, epoch: int) -> Answer:
        return await self.inner(case, epoch)


def policies(suite: LoadedSuite, margin: float | None) -> dict[str, GatePolicy]:
    """The suite's gated dimensions with their margins (`margin` overrides them); every dimension when
    none is gated."""
    gated = _gates(suite)
    if gated:
        return {
            name: GatePolicy(margin if margin is not None else g["margin"], g["goal"])
            for name, g in gated.items()
        }
    return {d.name: GatePolicy(margin or 0.0, d.spec.goal) for d in suite.dimensions}


def explain(report: GateReport, baseline: Run, candidate: Run) -> str:
    runs = f"runs {baseline.id[:12]} -> {candidate.id[:12]}"
    if report.blocked:
        regressed = [
            f"{v.dimension} {v.baseline:.2f} -> {v.candidate:.2f}, {v.reason} ({v.method})"
            for v in report.dimensions
            if v.decision == "block"
        ]
        return f"regresses on {'; '.join(regressed)} ({runs})"
    said = ", ".join(f"{v.dimension} {v.decision}" for v in report.dimensions)
    return f"no gated dimension regresses: {said} ({runs})"


def _failed_every_call(run: Run) -> str | None:
    called = (run.summary or {}).get("target", {})
    if called.get("calls") and called.get("errors") == called["calls"]:
        return str(called.get("first_error"))
    return None


@dataclass
class EvalsRolloutGate:
    store: Store
    fleet: Path  # where the fleet's EvalSuites are read from
    server: str  # this server, as a process on this host reaches it
    api_key: str | None = None  # for judge scorers (their calls go through the gateway)
    seed: int = 0
    client: ClientFactory | None = None  # tests: an in-process transport

    def _client(self, revision: int) -> httpx.AsyncClient:
        headers = {REVISION_HEADER: str(revision)}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        if self.client is not None:
            return self.client(headers)
        return httpx.AsyncClient(base_url=self.server.rstrip("/"), headers=headers, timeout=600)

    async def _load(self, request: GateRequest) -> LoadedSuite:
        def load() -> LoadedSuite:  # reads YAML and case files: off the event loop
            return load_suite(
                self.fleet, request.suite, prepare=lambda state: _judges(state, self.server, self.api_key)
            )

        suite = await asyncio.to_thread(load)
        target = suite.manifest.spec.target
        if (target.kind, target.name) != ("agent", request.agent):
            raise GateSetupError(
                f"suite {request.suite!r} targets {target.kind}:{target.name}, not agent:{request.agent}"
            )
        return suite

    async def _run(self, suite: LoadedSuite, request: GateRequest, revision: int) -> Run:
        async with self._client(revision) as client:
            target = PinnedAgent(AgentTarget(client, request.agent), revision)
            return await run_suite(
                suite,
                target,
                RunRepository(self.store),
                seed=self.seed,
                trigger="rollout",
                options={"gates": _gates(suite), "revision": revision},
            )

    async def __call__(self, request: GateRequest) -> GateVerdict:
        suite = await self._load(request)
        baseline = await self._run(suite, request, request.baseline)
        failed = _failed_every_call(baseline)
        if failed is not None:
            raise GateSetupError(
                f"the serving revision {request.baseline} answered none of {request.suite!r}'s cases "
                f"(first error: {failed}); nothing to compare with"
            )
        candidate = await self._run(suite, request, request.candidate)
        failed = _failed_every_call(candidate)
        if failed is not None:
            return GateVerdict(
                False, f"revision {request.candidate} answered none of the cases (first error: {failed})"
            )
        report = evaluate_gate(
            await RunRepository(self.store).observations(baseline.id),
            await RunRepository(self.store).observations(candidate.id),
            policies=policies(suite, request.margin),
            seed=self.seed,
            baseline_run=baseline.id,
            candidate_run=candidate.id,
        )
        return GateVerdict(not report.blocked, explain(report, baseline, candidate))
