"""How the reconciler holds a rollout at its rollout gate (`spec.rollout.gate`): one surge replica of the
new revision, reachable only by invokes pinned to it, until the gate passes; a block retires it and
makes the serving spec the newest revision again. A mixin of `Reconciler`, which owns the state."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fleetplane.manifests.agent import RolloutGate as GateSpec
from fleetplane.runtime.gate import GateRequest, GateRun, GateVerdict, RolloutGate, ask, cancel
from fleetplane.runtime.pool import AgentPool, Tracked
from fleetplane.runtime.revisions import AgentRevision, RevisionError, RevisionStore
from fleetplane.state.clock import Clock

if TYPE_CHECKING:
    from fleetplane.manifests.agent import Agent

log = logging.getLogger("fleetplane.runtime")


class GatedRollout:
    gate: RolloutGate | None
    revisions: RevisionStore
    clock: Clock

    if TYPE_CHECKING:  # provided by Reconciler

        def wake(self) -> None: ...
        def manifest(self, revision: AgentRevision) -> Agent: ...
        def _retire(self, pool: AgentPool, t: Tracked) -> None: ...
        async def _start(self, pool: AgentPool, agent: Agent, *, warm: bool = False) -> Tracked | None: ...

    async def _gated(
        self, pool: AgentPool, spec: GateSpec, outdated: list[Tracked], serving: list[Tracked], wanted: int
    ) -> bool:
        """Hold the rollout while the new revision's gate has not passed; True while held (or blocked)."""
        revision = pool.revision
        run = pool.gate
        if run is None or (run.digest, run.number) != (revision.digest, revision.number):
            serving_old = [t.number for t in outdated if t.routable]
            if not serving_old:
                return False  # nothing serves to protect or to compare with: roll out as usual
            request = GateRequest(pool.name, spec.suite, spec.margin, revision.number, max(serving_old))
            run = pool.gate = GateRun(revision.digest, revision.number, request)
            if self.gate is None:
                run.settle(GateVerdict(False, "this server has no rollout gate to run the suite"))
        if run.state == "passed":
            for t in serving:
                t.held = False
            return False
        for t in outdated:
            if not t.routable:
                self._retire(pool, t)  # takes no traffic (an earlier revision's held surge): nothing to keep
        if run.state == "blocked":
            for t in pool.current():
                self._retire(pool, t)  # the old revision keeps serving
            if run.undone is None:  # durably: the serving spec is the newest again (not after a restart)
                await self._roll_back(pool, run, outdated)
            return True
        for t in serving:
            t.held = True  # only invokes pinned to this revision reach it until the gate passes
        if not serving and wanted > 0:
            started = await self._start(pool, self.manifest(revision))  # the surge replica
            if started is not None:
                started.held = True
        for t in serving[1:]:
            self._retire(pool, t)  # surge 1: one replica of the new revision is what the gate needs
        if run.task is None and any(t.ready for t in serving[:1]) and self.gate is not None:
            run.task = asyncio.create_task(self._ask(pool, run), name=f"fleetplane-gate-{pool.name}")
        return True

    async def _roll_back(self, pool: AgentPool, run: GateRun, outdated: list[Tracked]) -> None:
        # By digest: the serving replicas keep the number they started as, which an undo since may have
        # renumbered (a reused spec moves to its new number).
        serving = max((t for t in outdated if t.routable), key=lambda t: t.number, default=None)
        history = await self.revisions.history(pool.name)
        to = next((h.number for h in history if serving is not None and h.digest == serving.digest), None)
        try:
            if to is None:
                raise RevisionError("the serving revision is no longer in the history")
            undone = await self.revisions.undo(pool.name, to=to, now=self.clock.now())
        except RevisionError as exc:
            log.error("agent %s: rolling back blocked revision %d failed: %s", pool.name, run.number, exc)
            return
        run.undone = undone.number
        self.wake()

    async def _ask(self, pool: AgentPool, run: GateRun) -> None:
        assert self.gate is not None
        log.info("agent %s: rollout gate %s on revision %d", pool.name, run.request.suite, run.number)
        await ask(self.gate, run)
        log.info(
            "agent %s: revision %d %s by its rollout gate: %s", pool.name, run.number, run.state, run.reason
        )
        self.wake()

    async def _cancel_gate(self, pool: AgentPool) -> None:
        if pool.gate is not None and await cancel(pool.gate):
            pool.gate = None  # a gate cut short says nothing
