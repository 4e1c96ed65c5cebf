"""The `bwrap` tier: bubblewrap with every namespace, a read-only root and nothing else writable.

The sandbox gets its own (empty) network namespace — only loopback; the forwarder inside is the only
way out, to the gateway. /tmp (also $HOME) is a tmpfs capped at the disk limit; /proc and /dev are
fresh; capabilities are dropped; the offline seccomp filter is loaded; the process runs as nobody inside a
user namespace, without capabilities. The root is the minimal read-only set of `rootfs.host_binds()`
(or the agent's own root filesystem), never the host's whole `/`. Secrets are copied from memfds into
read-only files on the /run/secrets tmpfs.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from fleetplane.runtime.gpu import gpu_nodes
from fleetplane.runtime.reaper import run_reaped
from fleetplane.runtime.replica import SECRETS_DIR, ReplicaSpec, SandboxError, Tier
from fleetplane.runtime.sandbox import (
    FORWARDER,
    FORWARDER_INSIDE,
    RUN_DIR,
    SANDBOX_UID,
    Availability,
    LaunchPlan,
    ReplicaPaths,
    base_env,
    forwarder_config,
    host_python,
)
from fleetplane.runtime.sandbox.rootfs import host_binds, late_binds
from fleetplane.runtime.sandbox.seccomp import filter_fd

AGENT_DIR = "/agent"
# the availability probe uses every feature `plan` needs (--size and --disable-userns came in bwrap 0.8)
_PROBE_ARGS = (
    "--unshare-user", "--disable-userns", "--proc", "/proc", "--dev", "/dev",
    "--size", "1048576", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--", "/bin/true",
)  # fmt: skip


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(f"fleetplane-{name}", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def gpu_binds(devices: tuple[str, ...]) -> list[str]:
    """The fresh /dev has no GPU: bind only the nodes of the allocated GPUs (a MIG instance's is its
    physical GPU's) and the shared control nodes, so a replica can open its GPUs and no other — the
    device-level half of CUDA_VISIBLE_DEVICES."""
    binds: list[str] = []
    for node in gpu_nodes(devices):
        binds += ["--dev-bind", str(node.host), f"/dev/{node.name}"]
    return binds


class BwrapSandbox:
    tier: Tier = "bwrap"

    def availability(self) -> Availability:
        path = shutil.which("bwrap")
        if path is None:
            return Availability("bwrap", False, "bwrap not installed (Debian package 'bubblewrap')")
        try:
            done = run_reaped(
                [path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", *_PROBE_ARGS],
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Availability("bwrap", False, f"bwrap did not run: {exc}")
        if done.returncode != 0:
            return Availability("bwrap", False, f"bwrap failed: {done.stderr.decode().strip()[:200]}")
        return Availability("bwrap", True, f"{path}: all namespaces, read-only root, seccomp")

    def plan(self, spec: ReplicaSpec, paths: ReplicaPaths) -> LaunchPlan:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxError("isolation 'bwrap' needs bubblewrap: apt-get install bubblewrap")
        fds: list[int] = []
        argv = [
            bwrap,
            "--unshare-all",
            "--unshare-user",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
        ]
        argv += ["--die-with-parent", "--new-session", "--hostname", "agent", "--cap-drop", "ALL"]
        argv += ["--disable-userns"]
        if spec.rootfs:  # the rootfs brings its own python3
            argv += ["--ro-bind", spec.rootfs, "/"]
            python = "python3"
        else:
            for bind in host_binds():
                argv += ["--symlink" if bind.symlink else "--ro-bind", bind.source, bind.dest]
            python = host_python()
        argv += ["--proc", "/proc", "--dev", "/dev"]
        argv += gpu_binds(spec.resources.gpu_devices)
        argv += ["--size", str(spec.resources.disk_bytes), "--tmpfs", "/tmp"]
        argv += ["--size", str(1 << 20), "--tmpfs", "/run", "--bind", str(paths.run_dir), RUN_DIR]
        if not spec.rootfs:
            for bind in late_binds():
                argv += ["--ro-bind", bind.source, bind.dest]
        argv += ["--ro-bind", str(FORWARDER), FORWARDER_INSIDE]
        argv += ["--size", str(1 << 20), "--tmpfs", SECRETS_DIR]
        for name, value in sorted(spec.secrets.items()):
            fd = _memfd(name, value)
            fds.append(fd)
            argv += ["--perms", "0400", "--ro-bind-data", str(fd), f"{SECRETS_DIR}/{name}"]
        argv += ["--remount-ro", SECRETS_DIR]
        if spec.cwd:
            argv += ["--ro-bind", spec.cwd, AGENT_DIR, "--chdir", AGENT_DIR]
        else:
            argv += ["--chdir", "/tmp"]
        argv += ["--remount-ro", "/"]
        seccomp = filter_fd()
        if seccomp is not None:
            fds.append(seccomp)
            argv += ["--seccomp", str(seccomp)]
        config = forwarder_config(spec, RUN_DIR, shared_net=False)
        argv += ["--", python, "-I", "-S", FORWARDER_INSIDE, config, "--", *spec.argv]
        return LaunchPlan(
            argv=argv,
            env=base_env(spec, SECRETS_DIR),
            pass_fds=tuple(fds),
            close_after_spawn=fds,
        )
