"""The reconciler: desired state (applied Agent manifests, as revisions) against what runs, continuously.

Each pass adopts newly applied Agent specs as revisions, then converges every agent's pool:

- **Scale**: the autoscaler (or the fixed `replicas.min`) says how many replicas take traffic.
- **Rolling update** (surge 1, unavailable 0): while replicas of an older revision run, one extra replica
  of the new revision is started at a time; an old ready replica is stopped only when the ready replicas
  left are still at least the wanted count. A new replica that never becomes ready (its startup probe
  fails, it crash-loops) therefore never takes traffic and never costs one: the old revision keeps serving.
- **Rollout gate**: an agent whose spec names `rollout.gate` holds its rollout once the new revision's
  surge replica is ready (that replica takes only invokes pinned to its revision; no old replica is
  stopped) while the gate — a `RolloutGate` the top floor supplies — runs as a task of its own. A pass
  lets the rolling update go on; a block or a failing gate removes the surge replica and leaves the old
  revision serving, the pool `blocked` with the gate's reason.
- **Undo** makes the previous revision the newest one again (`RevisionStore.undo`) and wakes the loop, so
  it starts at once and goes through this same code: the old replicas, still ready, are kept; the new
  ones are stopped.

Passes run every `poll` seconds and whenever a replica changes state, so readiness gates a rollout as
soon as it is known. Stopping a replica first takes it out of the balancer, then lets its requests in
flight finish (up to the stop grace) before the sandbox is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from fleetplane.manifests.agent import Agent
from fleetplane.runtime.autoscaler import Autoscaler, Scale, fixed_scale
from fleetplane.runtime.gate import RolloutGate
from fleetplane.runtime.gating import GatedRollout
from fleetplane.runtime.gpu import GpuAllocator, GpuUnavailable
from fleetplane.runtime.keys import AgentKeys, KeyProblem
from fleetplane.runtime.pool import AgentPool, Tracked
from fleetplane.runtime.replica import Launcher, ReplicaState, SandboxError, Tier
from fleetplane.runtime.revisions import AgentRevision, RevisionError, RevisionStore
from fleetplane.runtime.rollout_status import rollout_message
from fleetplane.runtime.specs import SpecError, SpecSettings, replica_spec
from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.store.applied import AppliedRepository
from fleetplane.store.db import Store

log = logging.getLogger("fleetplane.runtime")

TierChooser = Callable[[Agent], Tier]


def declared_tier(agent: Agent) -> Tier:
    """The tier an agent declares, else the weakest its trust allows (for launchers without a probe)."""
    from fleetplane.manifests.agent import MINIMUM_TIER

    return agent.spec.isolation or MINIMUM_TIER[agent.spec.trust]


class Reconciler(GatedRollout):
    def __init__(
        self,
        store: Store,
        launcher: Launcher,
        settings: SpecSettings,
        *,
        keys: AgentKeys | None = None,
        tiers: TierChooser = declared_tier,
        gpus: GpuAllocator | None = None,
        fleet_dir: Path | None = None,
        clock: Clock = SYSTEM_CLOCK,
        poll: float = 1.0,
        progress_deadline: float = 600.0,
        gate: RolloutGate | None = None,
    ) -> None:
        self.store = store
        self.launcher = launcher
        self.settings = settings
        self.keys = keys
        self.tiers = tiers
        self.gpus = gpus or GpuAllocator([])
        self.fleet_dir = fleet_dir
        self.clock = clock
        self.poll = poll
        self.progress_deadline = progress_deadline
        self.gate = gate  # the top floor's rollout gate (evals); agents naming one without it are blocked
        self.revisions = RevisionStore(store)
        self.pools: dict[str, AgentPool] = {}
        self.applied: dict[str, str] = {}  # agent → applied manifest digest
        self._generation: int | None = None
        self._agents: dict[tuple[str, str], Agent] = {}  # (agent, revision digest) → validated manifest
        self._ids: dict[str, itertools.count[int]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    # -- the loop ---------------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="fleetplane-reconciler")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)
            self._wake.clear()
            try:
                await self.sync()
            except Exception:
                log.exception("reconcile pass failed; the next one retries")

    async def settle(self) -> None:
        """Wait until every replica being retired has stopped."""
        while self._retiring:
            await asyncio.gather(*list(self._retiring), return_exceptions=True)

    async def stop(self) -> None:
        """Stop the loop and every replica (concurrently)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for pool in self.pools.values():
            await self._cancel_gate(pool)
        stops = [self._stop_now(pool, t) for pool in self.pools.values() for t in pool.replicas]
        await asyncio.gather(*stops, *self._retiring, return_exceptions=True)
        self.pools.clear()

    # -- desired state --------------------------------------------------------------------------------
    async def sync(self) -> None:
        """One pass: adopt what was applied, then converge every agent."""
        await self._adopt()
        current = await self.revisions.current()
        for name in list(self.pools):
            if name not in self.applied:
                gone = self.pools.pop(name)
                await self._cancel_gate(gone)
                await self._remove(gone)
        for name in sorted(self.applied):
            revision = current.get(name)
            if revision is None:
                continue
            pool = self.pools.get(name)
            if pool is None:
                pool = self.pools[name] = AgentPool(name, revision, rollout_started=self.clock.now())
            elif pool.revision.digest != revision.digest or pool.revision.number != revision.number:
                log.info("agent %s: rolling out revision %d (%s)", name, revision.number, revision.short)
                pool.revision, pool.error = revision, None
                pool.rollout_started = self.clock.now()
                await self._cancel_gate(pool)
            try:
                await self._converge(pool)
            except Exception as exc:  # one agent's trouble must not stop the others converging
                log.exception("agent %s: reconciling revision %d failed", name, pool.revision.number)
                pool.error = f"reconciling revision {pool.revision.number} failed: {exc}"

    async def _adopt(self) -> None:
        repo = AppliedRepository(self.store)
        generation = await repo.generation()
        if generation == self._generation:
            return
        applied = {name: doc for (kind, name), doc in (await repo.all()).items() if kind == Agent.KIND}
        now = self.clock.now()
        for name, doc in applied.items():
            if self.applied.get(name) == doc.digest:
                continue
            base = self._base_dir(doc.source)
            revision = await self.revisions.adopt(name, doc.digest, doc.document, base, now=now)
            if revision is not None:
                log.info("agent %s: applied spec is revision %d (%s)", name, revision.number, revision.short)
        for name in set(self.applied) - set(applied):
            await self.revisions.forget(name)
            if self.keys is not None:
                await self.keys.revoke(name, now=now)
        self.applied = {name: doc.digest for name, doc in applied.items()}
        self._generation = generation

    def _base_dir(self, source: str | None) -> str | None:
        if self.fleet_dir is None:
            return None
        if source is None:
            return str(self.fleet_dir.resolve())
        return str((self.fleet_dir / PurePosixPath(source).parent).resolve())

    async def undo(self, agent: str, *, to: int | None = None) -> AgentRevision:
        """Roll `agent` back to its previous revision (or revision `to`); the loop starts on it at once."""
        if agent not in self.applied:
            raise RevisionError(f"no agent named {agent!r} is applied")
        revision = await self.revisions.undo(agent, to=to, now=self.clock.now())
        self.wake()
        return revision

    def manifest(self, revision: AgentRevision) -> Agent:
        # By agent and digest: two agents with the same spec share a digest but not a name.
        key = (revision.agent, revision.digest)
        agent = self._agents.get(key)
        if agent is None:
            agent = self._agents[key] = Agent.model_validate(revision.document)
        return agent

    # -- converging one agent -------------------------------------------------------------------------
    async def _converge(self, pool: AgentPool) -> None:
        agent = self.manifest(pool.revision)
        for t in [t for t in pool.replicas if t.state == ReplicaState.STOPPED and not t.stopping]:
            # It ended under a restart policy that does not restart it: a replacement is started below.
            self._forget(pool, t)
        pool.scale = self._scale(pool, agent)
        wanted, warm_wanted = pool.scale.replicas, pool.scale.warm
        current = pool.current()
        serving = [t for t in current if not t.warm]
        warm = [t for t in current if t.warm]
        while len(serving) < wanted and warm:  # a warm sandbox becomes a serving replica at once
            promoted = warm.pop()
            promoted.warm = False
            serving.append(promoted)
        outdated = pool.outdated()
        gate = agent.spec.rollout.gate
        if outdated and gate is not None and await self._gated(pool, gate, outdated, serving, wanted):
            pool.rollout_message = rollout_message(
                pool, now=self.clock.now(), deadline=self.progress_deadline
            )
            pool.changed.set()
            return
        if outdated:
            live = len(serving) + len(outdated)
            while len(serving) < wanted and live < wanted + 1:  # surge 1
                started = await self._start(pool, agent)
                if started is None:
                    break
                serving.append(started)
                live += 1
            # Serving capacity: ready replicas that take traffic (an old warm sandbox serves no one).
            ready = len([t for t in serving if t.ready]) + len([t for t in outdated if t.routable])
            for t in sorted(outdated, key=lambda t: (t.routable, t.number)):
                if not t.routable:
                    self._retire(pool, t)  # takes no traffic: nothing to keep it for
                elif ready - 1 >= wanted:  # unavailable 0
                    self._retire(pool, t)
                    ready -= 1
        else:
            while len(serving) < wanted:
                started = await self._start(pool, agent)
                if started is None:
                    break
                serving.append(started)
            # Scaling down: unready replicas first, then the least busy, the newest of those first.
            extra = sorted(serving, key=lambda t: (t.ready, t.in_flight, -t.started_at))
            for t in extra[: max(0, len(serving) - wanted)]:
                self._retire(pool, t)
        while len(warm) < warm_wanted:
            started = await self._start(pool, agent, warm=True)
            if started is None:
                break
            warm.append(started)
        for t in warm[warm_wanted:]:
            self._retire(pool, t)
        pool.rollout_message = rollout_message(pool, now=self.clock.now(), deadline=self.progress_deadline)
        pool.changed.set()

    # -- the rollout gate ------------------------------------------------------------------------------
    def _scale(self, pool: AgentPool, agent: Agent) -> Scale:
        policy = agent.spec.autoscaling
        if policy is None:
            pool.autoscaler = None
            return fixed_scale(agent.spec.replicas)
        scaler = pool.autoscaler
        if scaler is None or scaler.policy != policy or scaler.replicas != agent.spec.replicas:
            initial = len([t for t in pool.replicas if not t.warm and not t.stopping]) or None
            scaler = pool.autoscaler = Autoscaler(policy, agent.spec.replicas, self.clock, initial=initial)
        scaler.observe(pool.in_flight)
        return scaler.decide()

    async def _start(self, pool: AgentPool, agent: Agent, *, warm: bool = False) -> Tracked | None:
        revision = pool.revision
        counter = self._ids.setdefault(pool.name, itertools.count())
        replica_id = f"{pool.name}-{revision.digest[:6]}-{next(counter)}"
        allocation = None
        try:
            # The first choice probes every isolation tier by starting one: off the event loop.
            tier = await asyncio.to_thread(self.tiers, agent)
            key = None
            if self.keys is not None and agent.spec.network.mode != "none":
                key = await self.keys.secret(agent, now=self.clock.now())
            gpu = agent.spec.resources.gpu
            if gpu is not None and (gpu.count or gpu.mig or gpu.share):
                allocation = self.gpus.allocate(replica_id, gpu, trusted=agent.spec.trust == "trusted")
            spec = replica_spec(
                agent,
                replica_id=replica_id,
                revision=f"{revision.number}-{revision.short}",
                tier=tier,
                base_dir=Path(revision.base_dir) if revision.base_dir else None,
                settings=self.settings,
                virtual_key=key,
                gpu_devices=allocation.devices if allocation else (),
            )
            replica = await self.launcher.start(spec)
        except (SpecError, KeyProblem, SandboxError, GpuUnavailable) as exc:
            if allocation is not None:
                self.gpus.release(replica_id)
            if pool.error != str(exc):
                log.error("agent %s: revision %d cannot start: %s", pool.name, revision.number, exc)
            pool.error = str(exc)
            return None
        pool.error = None
        tracked = Tracked(
            replica,
            revision.digest,
            revision.number,
            self.clock.now(),
            warm=warm,
            gpu_owner=replica_id if allocation else None,
        )
        replica.on_change(lambda _r, _old, _new: self._changed(pool))
        pool.replicas.append(tracked)
        log.info("agent %s: started replica %s (revision %d)", pool.name, replica_id, revision.number)
        return tracked

    def _changed(self, pool: AgentPool) -> None:
        pool.changed.set()
        self.wake()

    def _retire(self, pool: AgentPool, t: Tracked) -> None:
        """Out of the balancer now; stopped once its requests finish (or the grace ends)."""
        if t.stopping:
            return
        t.stopping = True
        task = asyncio.create_task(self._drain_and_stop(pool, t))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _drain_and_stop(self, pool: AgentPool, t: Tracked) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(t.idle.wait(), self.settings.stop_grace)
        await self._stop_now(pool, t)
        self.wake()

    async def _stop_now(self, pool: AgentPool, t: Tracked) -> None:
        t.stopping = True
        try:
            await t.replica.stop()
        except Exception as exc:
            log.warning("agent %s: stopping replica %s failed: %s", pool.name, t.id, exc)
        self._forget(pool, t)

    def _forget(self, pool: AgentPool, t: Tracked) -> None:
        if t in pool.replicas:
            pool.replicas.remove(t)
        if t.gpu_owner is not None:
            self.gpus.release(t.gpu_owner)

    async def _remove(self, pool: AgentPool) -> None:
        log.info("agent %s: no longer applied; stopping its replicas", pool.name)
        await asyncio.gather(*(self._stop_now(pool, t) for t in list(pool.replicas)))
