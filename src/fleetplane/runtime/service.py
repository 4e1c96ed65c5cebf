"""What the server mounts for agents: the invoke route, the agents' admin API, and the reconciler's
lifespan (started with the server, stopping every replica when it stops).

Admin API (under `/admin`, guarded like the rest of it):
- `GET /admin/agents` — every agent: revision, rollout status, replicas (state, restarts, in flight, log).
- `GET /admin/agents/{name}` — one agent, with its revision history.
- `GET /admin/agents/{name}/rollout` — the history, newest last, and the rollout status.
- `POST /admin/agents/{name}/rollout/undo` — body `{}` or `{"to": N}`: run the previous revision (or N).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetplane.manifests.agent import Agent
from fleetplane.runtime.balancer import Balancer, error
from fleetplane.runtime.gate import RolloutGate
from fleetplane.runtime.gpu import GpuAllocator
from fleetplane.runtime.keys import AgentKeys
from fleetplane.runtime.pool import AgentPool
from fleetplane.runtime.reconciler import Reconciler, TierChooser
from fleetplane.runtime.replica import Backoff, Launcher, Replica, ReplicaSpec, SandboxError, Tier
from fleetplane.runtime.revisions import RevisionError
from fleetplane.runtime.specs import SpecSettings
from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.store.db import Store
from fleetplane.store.url import home
from fleetplane.telemetry.spans import GenAISpans

log = logging.getLogger("fleetplane.runtime")


@dataclass
class RuntimeSettings:
    gateway_url: str | None = None  # the server as the host reaches it; the sandboxes' bridge targets it
    fleet_dir: Path | None = None  # where applied manifests' relative paths start
    root: Path | None = (
        None  # runtime files (logs, sockets, cgroups' names): default $FLEETPLANE_HOME/runtime
    )
    poll: float = 1.0
    invoke_wait: float = 10.0  # how long an invoke waits for a ready replica before a 503
    invoke_timeout: float = 300.0
    stop_grace: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    progress_deadline: float = 600.0
    enabled: bool = True  # FLEETPLANE_AGENTS=false: this server runs no agents (another one does)

    @classmethod
    def from_env(cls, **fields: Any) -> RuntimeSettings:
        """Settings with the operator's knobs from the environment: `FLEETPLANE_AGENTS` (false: run no
        agents on this server), `FLEETPLANE_RESTART_BACKOFF`
        (seconds before a crashed replica's first restart, doubling to 5 min; default 10) and
        `FLEETPLANE_INVOKE_WAIT` (seconds an invoke waits for a ready replica; default 10)."""
        settings = cls(**fields)
        switch = os.environ.get("FLEETPLANE_AGENTS", "").strip().lower()
        if switch:
            if switch not in ("true", "1", "yes", "false", "0", "no"):
                raise ValueError(f"FLEETPLANE_AGENTS={switch!r}: expected true or false")
            settings.enabled = switch in ("true", "1", "yes")
        for name, attribute in (
            ("FLEETPLANE_RESTART_BACKOFF", "backoff"),
            ("FLEETPLANE_INVOKE_WAIT", "invoke_wait"),
        ):
            raw = os.environ.get(name)
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
            if not value > 0:
                raise ValueError(f"{name}={raw!r}: expected more than 0 seconds")
            if attribute == "backoff":
                settings.backoff = Backoff(initial=value, maximum=max(value, Backoff().maximum))
            else:
                settings.invoke_wait = value
        return settings

    @property
    def runtime_root(self) -> Path:
        return self.root or home() / "runtime"


def _json(value: object, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def host_tier(agent: Agent) -> Tier:
    """The tier this host gives the agent (the sandbox wing's probe of what works here)."""
    from fleetplane.runtime.sandbox.policy import resolve_tier

    spec = agent.spec
    return resolve_tier(
        spec.trust, spec.isolation, allow_degrade=spec.allow_degrade_to_gvisor, agent=agent.name
    )


class LazySupervisor:
    """The sandbox wing's supervisor, made when the first replica starts: a server whose fleet has no
    agents neither probes the isolation tiers nor needs cgroups, and one that cannot run them (no root,
    no cgroups) still serves the gateway, its agents reporting why they do not run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._supervisor: Launcher | None = None

    async def start(self, spec: ReplicaSpec) -> Replica:
        if self._supervisor is None:
            from fleetplane.runtime.cgroups import CgroupError
            from fleetplane.runtime.supervisor import Supervisor

            try:
                self._supervisor = Supervisor(root=self.root)
            except CgroupError as exc:
                raise SandboxError(f"the local runtime cannot run agents here: {exc}") from None
        return await self._supervisor.start(spec)

    async def close(self) -> None:
        if self._supervisor is not None:
            await self._supervisor.close()


class AgentService:
    def __init__(
        self,
        store: Store,
        settings: RuntimeSettings,
        *,
        launcher: Launcher | None = None,
        clock: Clock = SYSTEM_CLOCK,
        tiers: TierChooser = host_tier,
        spans: GenAISpans | None = None,
        gate: RolloutGate | None = None,
    ) -> None:
        self.store = store
        self.gate = gate  # the top floor's rollout gate (cli/rollout_gate.py), for agents naming one
        self.settings = settings
        self._own_launcher = launcher is None
        self.launcher: Launcher | None = launcher
        self.clock = clock
        self._tiers = tiers
        self.reconciler: Reconciler | None = None
        self.balancer = Balancer(
            self._pool,
            self._wake,
            lambda: list(self.reconciler.pools.values()) if self.reconciler is not None else [],
            wait=settings.invoke_wait,
            timeout=settings.invoke_timeout,
            spans=spans,
        )

    def _pool(self, name: str) -> AgentPool | None:
        return self.reconciler.pools.get(name) if self.reconciler is not None else None

    def _wake(self) -> None:
        if self.reconciler is not None:
            self.reconciler.wake()

    async def start(self) -> None:
        root = self.settings.runtime_root
        root.mkdir(parents=True, exist_ok=True)
        if self.launcher is None:
            self.launcher = LazySupervisor(root)
        specs = SpecSettings(
            log_dir=root / "logs",
            gateway_url=self.settings.gateway_url,
            backoff=self.settings.backoff,
            stop_grace=self.settings.stop_grace,
        )
        self.reconciler = Reconciler(
            self.store,
            self.launcher,
            specs,
            keys=AgentKeys(self.store),
            tiers=self._tiers,
            gpus=GpuAllocator.from_env(),
            fleet_dir=self.settings.fleet_dir,
            clock=self.clock,
            poll=self.settings.poll,
            progress_deadline=self.settings.progress_deadline,
            gate=self.gate,
        )
        await self.reconciler.start()

    async def stop(self) -> None:
        if self.reconciler is not None:
            await self.reconciler.stop()
        await self.balancer.close()
        if self.launcher is not None and self._own_launcher:
            await self.launcher.close()

    # -- routes ---------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route("/agents/{name}/invoke", self.balancer.invoke, methods=["POST"]),
            Route("/admin/agents", self._list, methods=["GET"]),
            Route("/admin/agents/{name}", self._show, methods=["GET"]),
            Route("/admin/agents/{name}/rollout", self._rollout, methods=["GET"]),
            Route("/admin/agents/{name}/rollout/undo", self._undo, methods=["POST"]),
        ]

    def _unknown(self, name: str) -> Response:
        return error(404, "not_found", f"no agent named {name!r} is applied")

    async def _list(self, _: Request) -> Response:
        pools = self.reconciler.pools if self.reconciler is not None else {}
        return _json({"agents": [pools[name].report() for name in sorted(pools)]})

    async def _show(self, request: Request) -> Response:
        name = request.path_params["name"]
        pool = self._pool(name)
        if pool is None or self.reconciler is None:
            return self._unknown(name)
        history = await self.reconciler.revisions.history(name)
        return _json({**pool.report(), "history": [r.summary() for r in history]})

    async def _rollout(self, request: Request) -> Response:
        name = request.path_params["name"]
        pool = self._pool(name)
        if pool is None or self.reconciler is None:
            return self._unknown(name)
        history = await self.reconciler.revisions.history(name)
        applied = self.reconciler.applied.get(name)
        adopted = (await self.reconciler.revisions.adopted()).get(name)
        newest = history[-1] if history else pool.revision
        body = {
            "agent": name,
            "revision": newest.number,  # what should run (the pool converges to it)
            "status": pool.status() if pool.revision.number == newest.number else "progressing",
            "message": pool.error or pool.rollout_message,
            "history": [r.summary() for r in history],
            # After an undo the applied manifest is not what runs until a different spec is applied.
            "drift": newest.cause == "undo" and applied == adopted,
            "gate": pool.gate.report() if pool.gate is not None else None,
        }
        return _json(body)

    async def _undo(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self._pool(name) is None or self.reconciler is None:
            return self._unknown(name)
        raw = await request.body()
        to = None
        if raw.strip():
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                return error(
                    400, "invalid_request", f"the body is not JSON (line {exc.lineno} column {exc.colno})"
                )
            if not isinstance(body, dict) or set(body) - {"to"}:
                return error(400, "invalid_request", 'the body is {} or {"to": REVISION_NUMBER}')
            to = body.get("to")
            if to is not None and (not isinstance(to, int) or isinstance(to, bool) or to < 1):
                return error(400, "invalid_request", f"'to' must be a revision number (>= 1), not {to!r}")
        try:
            revision = await self.reconciler.undo(name, to=to)
        except RevisionError as exc:
            return error(409, "conflict", str(exc))
        return _json(
            {
                "agent": name,
                "revision": revision.number,
                "digest": revision.digest,
                "message": f"rolling back agent {name!r}: its spec {revision.short} is now "
                f"revision {revision.number}",
            }
        )
