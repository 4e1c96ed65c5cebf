"""The `gvisor` tier: runsc (gVisor's application kernel) running a generated OCI bundle.

Same contract as bwrap — read-only root, size-capped tmpfs /tmp, no capabilities, nobody, no network
but the forwarder — with the agent's syscalls served by the Sentry instead of the host kernel. On these
hosts the 2022 runsc build needs `--network=none` and `--platform=ptrace`; `--host-uds=all` lets the
forwarder reach gateway.sock and create agent.sock/control.sock in the bind-mounted run directory.
runsc is started inside the replica's cgroup with --ignore-cgroups, so the host cgroup limits the
whole sandbox (Sentry and Gofer included).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from fleetplane.runtime.reaper import reaped_argv, run_reaped
from fleetplane.runtime.replica import SECRETS_DIR, ReplicaSpec, SandboxError, Tier
from fleetplane.runtime.sandbox import (
    FORWARDER,
    FORWARDER_INSIDE,
    RUN_DIR,
    Availability,
    LaunchPlan,
    ReplicaPaths,
    base_env,
    forwarder_config,
    host_python,
)
from fleetplane.runtime.sandbox.files import write_secret_files
from fleetplane.runtime.sandbox.rootfs import host_binds, late_binds

# Like a RuntimeClass's overhead.podFixed: the Sentry and Gofer (Go programs: every thread is a pid)
# live in the replica's cgroup, so their share is added to the agent's limits rather than taken from it.
OVERHEAD_MEMORY = 64 * 2**20
OVERHEAD_PIDS = 192
RUNSC_FLAGS = ("--network=none", "--platform=ptrace", "--host-uds=all", "--ignore-cgroups")


def _mount(dest: str, source: str, *options: str, kind: str = "bind") -> dict[str, object]:
    return {"destination": dest, "type": kind, "source": source, "options": list(options)}


def oci_config(
    spec: ReplicaSpec, argv: list[str], env: dict[str, str], paths: ReplicaPaths
) -> dict[str, object]:
    secrets = write_secret_files(spec, paths, uid=0)
    root = spec.rootfs or str(_skeleton(paths.state_dir / "root", spec))
    mounts = []
    if not spec.rootfs:
        mounts += [_mount(b.dest, b.source, "rbind", "ro") for b in host_binds() if not b.symlink]
    mounts += [
        _mount("/proc", "proc", kind="proc"),
        _mount("/tmp", "tmpfs", "nosuid", "nodev", f"size={spec.resources.disk_bytes}", kind="tmpfs"),
        _mount("/run", "tmpfs", "nosuid", "nodev", "size=1m", kind="tmpfs"),
        _mount(RUN_DIR, str(paths.run_dir), "rbind", "rw"),
        _mount(SECRETS_DIR, str(secrets), "rbind", "ro"),
    ]
    if not spec.rootfs:
        mounts += [_mount(b.dest, b.source, "rbind", "ro") for b in late_binds()]
    mounts.append(_mount(FORWARDER_INSIDE, str(FORWARDER), "rbind", "ro"))
    if spec.cwd:
        mounts.append(_mount("/agent", spec.cwd, "rbind", "ro"))
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},  # root of the Sentry's kernel, with no capabilities
            "args": argv,
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": "/agent" if spec.cwd else "/tmp",
            "capabilities": {"bounding": [], "effective": [], "inheritable": [], "permitted": []},
            "noNewPrivileges": True,
        },
        "root": {"path": root, "readonly": True},
        "hostname": "agent",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        },
    }


def _skeleton(root: Path, spec: ReplicaSpec) -> Path:
    """An empty root with the mount points and compatibility symlinks the bind mounts need."""
    root.mkdir(parents=True, exist_ok=True)
    points = [b for b in host_binds()]
    for bind in points:
        target = root / bind.dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if bind.symlink:
            if not target.is_symlink():
                target.symlink_to(bind.source)
        elif os.path.isdir(bind.source):
            target.mkdir(exist_ok=True)
        else:
            target.touch(exist_ok=True)
    for d in ("proc", "dev", "tmp", "run", "agent"):
        (root / d).mkdir(exist_ok=True)
    return root


class GvisorSandbox:
    tier: Tier = "gvisor"

    def availability(self) -> Availability:
        runsc = shutil.which("runsc")
        if runsc is None:
            return Availability("gvisor", False, "runsc not installed (Debian package 'runsc')")
        with tempfile.TemporaryDirectory(prefix="fp-runsc-") as root:
            try:
                done = run_reaped([runsc, f"--root={root}", *RUNSC_FLAGS, "do", "/bin/true"], timeout=30)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return Availability("gvisor", False, f"runsc did not run: {exc}")
        if done.returncode != 0:
            return Availability("gvisor", False, f"runsc failed: {done.stderr.decode().strip()[-200:]}")
        return Availability("gvisor", True, f"{runsc}: --network=none --platform=ptrace")

    def plan(self, spec: ReplicaSpec, paths: ReplicaPaths) -> LaunchPlan:
        runsc = shutil.which("runsc")
        if runsc is None:
            raise SandboxError("isolation 'gvisor' needs runsc: apt-get install runsc")
        python = "python3" if spec.rootfs else host_python()
        config = forwarder_config(spec, RUN_DIR, shared_net=False)
        inner = [python, "-I", "-S", FORWARDER_INSIDE, config, "--", *spec.argv]
        bundle = paths.state_dir / "bundle"
        bundle.mkdir(parents=True, exist_ok=True)
        oci = oci_config(spec, inner, base_env(spec, SECRETS_DIR), paths)
        (bundle / "config.json").write_text(json.dumps(oci))
        state = paths.state_dir / "runsc"
        state.mkdir(exist_ok=True)
        container = f"fp-{Path(paths.state_dir).name}"
        argv = [runsc, f"--root={state}", *RUNSC_FLAGS, "run", "--bundle", str(bundle), container]
        # runsc's Sentry, Gofer and ptrace stubs come and go as the agent runs; orphaned, they would be
        # the supervisor's zombies, so runsc runs under a subreaper of its own
        return LaunchPlan(argv=reaped_argv(argv), env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
