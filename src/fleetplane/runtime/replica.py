"""The replica contract: one running copy of an agent, as the control loop sees it.

How runtime-control (reconciler, autoscaler, invoke balancer) uses it::

    from fleetplane.runtime.replica import ReplicaSpec, ReplicaState, Resources, Probes, ProbeSpec, HttpCheck
    from fleetplane.runtime.supervisor import Supervisor
    from fleetplane.runtime.sandbox.policy import resolve_tier   # trust → tier, or TierRefused

    supervisor = Supervisor(root=".fleetplane/runtime")     # one per fleetplane process
    tier = resolve_tier(spec.trust, spec.isolation, allow_degrade=spec.allow_degrade_to_gvisor)
    replica = await supervisor.start(ReplicaSpec(..., tier=tier))   # returns at once, state STARTING
    replica.on_change(lambda r, old, new: ...)              # every state change, on the event loop
    await replica.wait_for({ReplicaState.READY}, timeout=30)
    transport = httpx.AsyncHTTPTransport(uds=replica.endpoint)   # reaches the agent's port inside
    httpx.AsyncClient(transport=transport, base_url="http://agent").post("/invoke", json=...)
    await replica.stop(grace=10)                            # whole sandbox killed after the grace
    await supervisor.close()                                # stops every replica it started

`Supervisor.start` keeps the replica running: restarts with CrashLoopBackOff-style back-off (10 s
doubling to 5 min, reset after 10 min up; see `Backoff`), restarts on a failed liveness probe, and
tracks readiness continuously (READY ⇄ UNREADY). Only READY replicas take traffic.

Secrets are delivered as read-only files on a tmpfs at /run/secrets/NAME, never in env or logs. The
agent's virtual key never enters the sandbox: the host side of the network bridge adds it as the
Authorization header; the agent sees a placeholder key and base URLs pointing at the in-sandbox bridge.
Logs are JSON lines (ts, stream, line, agent, replica, revision) in `log_path(spec)`; read them with
`fleetplane.runtime.logs.read_records`. `argv` runs with `cwd` as the working directory (mounted at
/agent in a sandbox), so write it with relative paths. Network "allowlist" gives the agent HTTPS_PROXY, an
egress proxy that admits only `allow`. Which tiers work on this host: `sandbox.policy.host_tiers()`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Tier = Literal["process", "bwrap", "gvisor", "microvm"]
NetworkMode = Literal["gateway", "none", "allowlist"]
RestartPolicy = Literal["Always", "OnFailure", "Never"]
ExitReason = Literal["OOMKilled", "Signal", "Exit", "ProbeFailed"]

PLACEHOLDER_KEY = "sk-fleetplane-bridge"  # what the agent sees as its API key; the bridge swaps it
SECRETS_DIR = "/run/secrets"


class ReplicaState(enum.StrEnum):
    STARTING = "starting"  # launched, startup probe (or readiness) not yet passed
    READY = "ready"  # readiness passing: takes traffic
    UNREADY = "unready"  # running, readiness failing: no traffic
    EXITED = "exited"  # the process ended; a restart decision follows
    BACKOFF = "backoff"  # waiting before the next restart (CrashLoopBackOff)
    STOPPED = "stopped"  # stopped on request, or exited under a policy that does not restart


@dataclass(frozen=True)
class Resources:
    cpu_millis: int = 1000
    memory_bytes: int = 512 * 2**20
    pids: int = 256
    disk_bytes: int = 256 * 2**20  # the size cap of the writable tmpfs (/tmp and the home)
    gpu_devices: tuple[str, ...] = ()  # device indices; exported as CUDA_VISIBLE_DEVICES


@dataclass(frozen=True)
class HttpCheck:
    path: str = "/healthz"
    port: int | None = None  # None: the agent's port (reached through the endpoint)


@dataclass(frozen=True)
class ExecCheck:
    argv: tuple[str, ...]  # run inside the sandbox; exit 0 passes


@dataclass(frozen=True)
class ProbeSpec:
    check: HttpCheck | ExecCheck
    initial_delay: float = 0.0
    period: float = 5.0
    timeout: float = 2.0
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass(frozen=True)
class Probes:
    startup: ProbeSpec | None = None
    readiness: ProbeSpec | None = None
    liveness: ProbeSpec | None = None


@dataclass(frozen=True)
class Backoff:
    """CrashLoopBackOff: `initial` doubling to `maximum`; the count resets after `reset_after` up."""

    initial: float = 10.0
    maximum: float = 300.0
    reset_after: float = 600.0

    def delay(self, restarts: int) -> float:
        """Seconds to wait before restart number `restarts` (0 = the first restart)."""
        return min(self.maximum, self.initial * 2.0 ** min(restarts, 32))


@dataclass(frozen=True)
class ReplicaSpec:
    agent: str
    replica_id: str  # unique per start target, e.g. "billing-7f3a-0"; names the cgroup and the socket
    revision: str
    argv: tuple[str, ...]
    log_dir: Path
    tier: Tier = "bwrap"
    cwd: str | None = None  # host directory, mounted read-only at /agent and used as the working dir
    rootfs: str | None = None  # host directory used as / (read-only); argv then runs inside it
    env: Mapping[str, str] = field(default_factory=dict)  # never secrets
    secrets: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    resources: Resources = field(default_factory=Resources)
    network: NetworkMode = "gateway"
    allow: tuple[str, ...] = ()  # host:port destinations for network "allowlist" (plus the gateway)
    gateway_url: str | None = None  # the fleetplane server as the host reaches it, e.g. http://127.0.0.1:4000
    virtual_key: str | None = field(default=None, repr=False)  # injected by the bridge, never in the sandbox
    port: int = 8080  # where the agent listens inside the sandbox ($PORT)
    gateway_port: int = 4000  # where the bridge listens inside the sandbox (127.0.0.1)
    probes: Probes = field(default_factory=Probes)
    restart_policy: RestartPolicy = "Always"
    backoff: Backoff = field(default_factory=Backoff)
    stop_grace: float = 10.0  # SIGTERM, then SIGKILL of the whole cgroup after this long


@dataclass(frozen=True)
class ExitStatus:
    reason: ExitReason
    code: int | None = None  # the exit code (Exit), or None
    signal: str | None = None  # e.g. "SIGKILL" (Signal, and OOMKilled when the kernel killed it)
    at: float = 0.0  # wall-clock time of the exit
    detail: str = ""  # e.g. which probe failed and its last output


StateCallback = Callable[["Replica", ReplicaState, ReplicaState], None]


class Replica(Protocol):
    """The handle `Supervisor.start` returns; it outlives restarts of the underlying process."""

    spec: ReplicaSpec

    @property
    def state(self) -> ReplicaState: ...

    @property
    def endpoint(self) -> str:
        """A host-side unix socket path that reaches the agent's HTTP port inside the sandbox."""
        ...

    @property
    def pid(self) -> int | None: ...

    @property
    def restarts(self) -> int: ...

    @property
    def last_exit(self) -> ExitStatus | None: ...

    @property
    def log_path(self) -> Path: ...

    def on_change(self, callback: StateCallback) -> Callable[[], None]:
        """Call `callback(replica, old, new)` on every state change; returns an unsubscribe function."""
        ...

    async def wait_for(self, states: Collection[ReplicaState], timeout: float | None = None) -> ReplicaState:
        """Wait until the state is one of `states` (returns it), or raise TimeoutError."""
        ...

    async def stop(self, grace: float | None = None) -> None:
        """SIGTERM, wait `grace` (default spec.stop_grace), then kill the whole cgroup; state STOPPED."""
        ...


class Launcher(Protocol):
    async def start(self, spec: ReplicaSpec) -> Replica: ...

    async def close(self) -> None: ...


class SandboxError(RuntimeError):
    """A replica could not be started as specified (a tier missing here, a limit that did not hold)."""


class TierRefused(SandboxError):
    """The trust level needs a tier this host cannot give, and degrading was not allowed."""


def log_path(spec: ReplicaSpec) -> Path:
    """Where a replica's stdout/stderr go: <log_dir>/<agent>/<replica_id>.jsonl (one file per replica)."""
    return Path(spec.log_dir) / spec.agent / f"{spec.replica_id}.jsonl"
