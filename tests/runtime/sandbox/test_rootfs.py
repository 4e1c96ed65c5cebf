"""Bring your own root filesystem: the agent's directory is `/` (read-only) and its own python3 runs the
forwarder. The test rootfs is assembled from the host's /usr with bind mounts, undone afterwards."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetplane.runtime.replica import HttpCheck, Probes, ProbeSpec, ReplicaState

pytestmark = [pytest.mark.usefixtures("bwrap_ok")]

READY = Probes(readiness=ProbeSpec(HttpCheck("/healthz"), period=0.1, timeout=1.0, failure_threshold=1))


@pytest.fixture
def rootfs(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "rootfs"
    for d in ("usr", "etc", "proc", "dev", "tmp", "run", "agent"):
        (root / d).mkdir(parents=True)
    for link, target in (
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/sbin"),
    ):
        (root / link).symlink_to(target)
    (root / "etc/passwd").write_text("nobody:x:65534:65534:nobody:/tmp:/bin/sh\n")
    subprocess.run(["mount", "--bind", "/usr", str(root / "usr")], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root / "usr")], check=True)


@pytest.mark.anyio
async def test_an_agent_runs_in_its_own_root_filesystem(
    supervisor: Any, make_spec: Any, http: Any, rootfs: Path
) -> None:
    spec = make_spec(("python3", "probe_agent.py"), rootfs=str(rootfs), probes=READY)
    replica = await supervisor.start(spec)
    assert await replica.wait_for({ReplicaState.READY}, timeout=20) == ReplicaState.READY
    env = await http.get(replica, "/env")
    assert env["FLEETPLANE_REPLICA"] == spec.replica_id
    assert (await http.get(replica, "/write?path=/etc/evil"))["result"].startswith("denied")
    # the host's own files are not in this root: only what the rootfs brings
    assert (await http.get(replica, "/exists?path=/etc/passwd"))["exists"] is True
    assert (await http.get(replica, "/exists?path=/etc/hostname"))["exists"] is False
    assert (await http.get(replica, f"/exists?path={Path(__file__).parent}"))["exists"] is False
    assert (await http.get(replica, "/exists?path=/agent/probe_agent.py"))["exists"] is True


@pytest.mark.anyio
@pytest.mark.usefixtures("runsc_ok")
async def test_the_same_rootfs_runs_under_gvisor(
    supervisor: Any, make_spec: Any, http: Any, rootfs: Path
) -> None:
    spec = make_spec(("python3", "probe_agent.py"), rootfs=str(rootfs), probes=READY, tier="gvisor")
    replica = await supervisor.start(spec)
    assert await replica.wait_for({ReplicaState.READY}, timeout=60) == ReplicaState.READY
    assert (await http.get(replica, "/exists?path=/etc/hostname"))["exists"] is False
    assert (await http.get(replica, "/exists?path=/agent/probe_agent.py"))["exists"] is True


def test_python_under_the_sandbox_tmpfs_is_bound_again_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # A checkout and virtualenv in /tmp (as on CI) would be hidden by the sandbox's own /tmp.
    from fleetplane.runtime.sandbox import rootfs

    monkeypatch.setattr(rootfs, "_python_dirs", lambda: ["/opt/py", "/tmp/ci/.venv", "/tmp/ci/src", "/runx"])
    assert [(b.source, b.dest) for b in rootfs.late_binds()] == [
        ("/tmp/ci/.venv", "/tmp/ci/.venv"),
        ("/tmp/ci/src", "/tmp/ci/src"),
    ]
