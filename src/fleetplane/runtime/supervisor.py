"""The supervisor: starts replicas in their sandbox and cgroup and keeps them running.

Per start: a fresh cgroup (limits written and read back), the tier's launch plan, stdout/stderr to the
replica's log, then probes — startup first, then readiness (READY ⇄ UNREADY) and liveness side by side.
When the process ends: the whole cgroup is killed, orphans reaped (the supervisor is a child
subreaper), the exit classified (OOMKilled from the cgroup's oom_kill counter, a signal, an exit code,
or ProbeFailed when a probe had it killed), and — by restart policy — a restart after CrashLoopBackOff:
`spec.backoff.initial` doubling to `maximum`, the count reset once a start stayed up `reset_after`.
Time for the back-off comes from the injected clock.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from fleetplane.runtime import gpu
from fleetplane.runtime.bridge import EgressProxy, GatewayProxy, term
from fleetplane.runtime.cgroups import Cgroup, CgroupDriver, Limits, detect, group_name, sweep
from fleetplane.runtime.reaper import set_subreaper
from fleetplane.runtime.replica import ReplicaSpec, SandboxError
from fleetplane.runtime.sandbox import ReplicaPaths, gvisor, sandbox_for
from fleetplane.runtime.sandbox.files import remove_secret_files
from fleetplane.runtime.supervised import ManagedReplica
from fleetplane.state.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("fleetplane.runtime.supervisor")

__all__ = ["ManagedReplica", "Supervisor", "run_base"]


def run_base() -> Path:
    """Where replicas' run directories go: short paths, because a unix socket path is at most 107 bytes."""
    if os.access("/run", os.W_OK):
        return Path("/run/fleetplane")
    return Path(tempfile.gettempdir()) / f"fleetplane-{os.getuid()}"


_libc = ctypes.CDLL(None, use_errno=True)
_MNT_DETACH = 2


def mount_tmpfs(path: Path, size: int) -> bool:
    """A small tmpfs on a run directory, so nothing the sandbox writes there reaches a host disk."""
    return _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, f"size={size},mode=0755".encode()) == 0


def unmount(path: Path) -> None:
    _libc.umount2(str(path).encode(), _MNT_DETACH)


class Supervisor:
    """Starts and keeps replicas; one per fleetplane process (`Launcher` in `runtime.replica`)."""

    def __init__(
        self,
        root: Path | str = ".fleetplane/runtime",
        *,
        clock: Clock = SYSTEM_CLOCK,
        cgroups: CgroupDriver | None = None,
        run_dir: Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.clock = clock
        self.cgroups = cgroups if cgroups is not None else detect()
        self.run_base = run_dir or run_base()
        self.subreaper = set_subreaper()
        self.swept = sweep(self.cgroups)  # what crashed supervisors left behind
        self._replicas: dict[str, ManagedReplica] = {}
        self._starts = 0

    @property
    def replicas(self) -> dict[str, ManagedReplica]:
        return dict(self._replicas)

    async def start(self, spec: ReplicaSpec) -> ManagedReplica:
        """Launch a replica and keep it running; returns at once (state STARTING)."""
        existing = self._replicas.get(spec.replica_id)
        if existing is not None and not existing.finished:
            raise SandboxError(f"replica {spec.replica_id!r} is running already")
        if spec.tier == "microvm":
            why = sandbox_for("microvm").availability().reason
            raise SandboxError(f"agent {spec.agent!r}: isolation 'microvm' is not available here: {why}")
        self.device_rules(spec)  # a GPU this host cannot confine is refused now, not retried in a loop
        paths = self.paths_for(spec.replica_id)
        replica = ManagedReplica(self, spec, paths)
        self._replicas[spec.replica_id] = replica
        try:
            await replica.open()
        except BaseException:
            await replica.close_resources()
            raise
        replica.begin()
        return replica

    def paths_for(self, replica_id: str) -> ReplicaPaths:
        """A replica's run and state directories (short: a unix socket path is at most 107 bytes), keyed
        by this supervisor's root too, because two supervisors on one host may name replicas alike."""
        key = hashlib.sha256(f"{self.root.resolve()}\0{replica_id}".encode()).hexdigest()[:12]
        return ReplicaPaths(run_dir=self.run_base / key, state_dir=self.run_base / f"{key}-state")

    async def close(self, grace: float | None = None) -> None:
        """Stop every replica this supervisor started."""
        await asyncio.gather(*(r.stop(grace) for r in self._replicas.values()), return_exceptions=True)

    # -- used by ManagedReplica -------------------------------------------------------------

    def new_cgroup(self, spec: ReplicaSpec) -> Cgroup:
        self._starts += 1
        memory, pids = spec.resources.memory_bytes, spec.resources.pids
        if spec.tier == "gvisor":
            memory, pids = memory + gvisor.OVERHEAD_MEMORY, pids + gvisor.OVERHEAD_PIDS
        limits = Limits(
            memory_bytes=memory,
            cpu_millis=spec.resources.cpu_millis,
            pids=pids,
            devices=self.device_rules(spec),
        )
        return self.cgroups.create(group_name(spec.replica_id, self._starts), limits)

    def device_rules(self, spec: ReplicaSpec) -> tuple[str, ...] | None:
        """A GPU replica's device cgroup allow list (cgroup v1). cgroup v2 has no device files — it
        needs a BPF device program, which fleetplane does not load — so there a sandbox's own /dev
        (only the allocated nodes bound, no CAP_MKNOD) is the device-level limit, and the process
        tier, which sees the host's /dev, is refused a GPU rather than given every one."""
        if not spec.resources.gpu_devices:
            return None
        if self.cgroups.version == 1:
            return gpu.cgroup_rules(spec.resources.gpu_devices)
        if spec.tier == "process":
            raise SandboxError(
                f"agent {spec.agent!r}: a GPU on isolation 'process' needs cgroup v1 here (on cgroup v2 "
                "only a sandbox's /dev limits which GPUs it opens): use isolation 'bwrap'"
            )
        return None

    def prepare(self, paths: ReplicaPaths) -> None:
        for d in (paths.run_dir, paths.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(paths.run_dir):
            mount_tmpfs(paths.run_dir, 1 << 20)

    def cleanup(self, paths: ReplicaPaths) -> None:
        if os.path.ismount(paths.run_dir):
            unmount(paths.run_dir)
        remove_secret_files(paths.state_dir)
        for d in (paths.run_dir, paths.state_dir):
            shutil.rmtree(d, ignore_errors=True)

    def gateway_proxy(self, spec: ReplicaSpec, paths: ReplicaPaths) -> GatewayProxy | None:
        if spec.network == "none" or spec.gateway_url is None:
            return None
        return GatewayProxy(paths.run_dir / "gateway.sock", spec.gateway_url, spec.virtual_key)

    def egress_proxy(self, spec: ReplicaSpec, paths: ReplicaPaths) -> EgressProxy | None:
        if spec.network != "allowlist":
            return None
        return EgressProxy(paths.run_dir / "egress.sock", spec.allow)

    @staticmethod
    async def request_term(paths: ReplicaPaths) -> bool:
        return await term(paths.run_dir / "control.sock")

    @staticmethod
    def signal_name(number: int) -> str:
        try:
            return signal.Signals(number).name
        except ValueError:
            return f"signal {number}"
