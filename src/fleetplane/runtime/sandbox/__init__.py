"""Sandbox tiers: how a replica's process tree is isolated, from weakest to strongest.

- `process`: the host's namespaces; a cgroup and rlimits only (trusted agents only).
- `bwrap`: bubblewrap — every namespace (network included), read-only root, size-capped tmpfs /tmp,
  fresh /proc and /dev, all capabilities dropped, a seccomp filter, run as nobody.
- `gvisor`: runsc (an application kernel) with --network=none --platform=ptrace, the same contract.
- `microvm`: only where a capability probe really boots a guest.

Every tier runs the same in-sandbox forwarder (`runtime/forwarder.py`) as the agent's parent, so the
bridge, exec probes and graceful stop work the same way everywhere. A tier turns a `ReplicaSpec` into a
`LaunchPlan` (argv, env, file descriptors to pass); the supervisor owns cgroups and the process.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fleetplane.runtime import forwarder
from fleetplane.runtime.replica import SECRETS_DIR, ReplicaSpec, SandboxError, Tier

SANDBOX_UID = 65534  # nobody: the host uid sandboxed tiers run as, so an escape lands with no rights
RUN_DIR = "/run/fleetplane"  # where the replica's run directory appears inside bwrap/gvisor
FORWARDER = Path(forwarder.__file__).resolve()
FORWARDER_INSIDE = "/run/fleetplane-bin/forwarder.py"  # where bwrap/gvisor mount it
EGRESS_PROXY_PORT = 3128  # network "allowlist": HTTPS_PROXY inside the sandbox


@dataclass(frozen=True)
class Availability:
    tier: Tier
    ok: bool
    reason: str  # why not, or what was checked


@dataclass
class ReplicaPaths:
    run_dir: Path  # host directory: agent.sock, control.sock, gateway.sock, exit.json
    state_dir: Path  # host directory private to the supervisor (bundles, runsc state, secret files)


@dataclass
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()
    cwd: str | None = None  # the host working directory (the process tier; sandboxes chdir inside)
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)
    close_after_spawn: list[int] = field(default_factory=list)


class Sandbox(Protocol):
    tier: Tier

    def availability(self) -> Availability: ...

    def plan(self, spec: ReplicaSpec, paths: ReplicaPaths) -> LaunchPlan: ...


def forwarder_config(spec: ReplicaSpec, run_dir: str, *, shared_net: bool) -> str:
    config: dict[str, object] = {
        "run_dir": run_dir,
        # on the host network (process tier) fixed ports would collide between replicas: free ones
        "agent_port": 0 if shared_net else spec.port,
        "gateway_port": 0 if shared_net else spec.gateway_port,
        "gateway": spec.network != "none" and spec.gateway_url is not None,
    }
    if spec.network == "allowlist":
        config["proxy_port"] = 0 if shared_net else EGRESS_PROXY_PORT
    return json.dumps(config)


def base_env(spec: ReplicaSpec, secrets_dir: str) -> dict[str, str]:
    """The agent's environment before the forwarder adds the bridge: the spec's env (never secrets)."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "FLEETPLANE_AGENT": spec.agent,
        "FLEETPLANE_REPLICA": spec.replica_id,
        "FLEETPLANE_REVISION": spec.revision,
        "FLEETPLANE_SECRETS_DIR": secrets_dir,
    }
    # OTel SDKs read these: the agent's spans are named and labelled without it configuring anything
    env["OTEL_SERVICE_NAME"] = spec.agent
    env["OTEL_RESOURCE_ATTRIBUTES"] = (
        f"fleetplane.agent={spec.agent},fleetplane.replica={spec.replica_id},fleetplane.revision={spec.revision}"
    )
    if spec.resources.gpu_devices:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(spec.resources.gpu_devices)
    env.update(spec.env)
    return env


def host_python() -> str:
    """The interpreter that runs the forwarder when the sandbox sees the host's root filesystem."""
    return os.path.realpath(sys.executable)


def sandbox_for(tier: Tier) -> Sandbox:
    from fleetplane.runtime.sandbox.bwrap import BwrapSandbox
    from fleetplane.runtime.sandbox.gvisor import GvisorSandbox
    from fleetplane.runtime.sandbox.microvm import MicrovmSandbox
    from fleetplane.runtime.sandbox.process import ProcessSandbox

    tiers: dict[str, Sandbox] = {
        "process": ProcessSandbox(),
        "bwrap": BwrapSandbox(),
        "gvisor": GvisorSandbox(),
        "microvm": MicrovmSandbox(),
    }
    if tier not in tiers:
        raise SandboxError(f"unknown isolation tier {tier!r}; expected one of {', '.join(tiers)}")
    return tiers[tier]


__all__ = [
    "FORWARDER",
    "FORWARDER_INSIDE",
    "RUN_DIR",
    "SANDBOX_UID",
    "SECRETS_DIR",
    "Availability",
    "LaunchPlan",
    "ReplicaPaths",
    "Sandbox",
    "base_env",
    "forwarder_config",
    "host_python",
    "sandbox_for",
]
