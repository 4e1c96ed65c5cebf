"""A GPU replica gets exactly its devices, asserted by behaviour: CUDA_VISIBLE_DEVICES names them, a
sandbox's /dev holds only their nodes, and the device cgroup (v1) lets it open those and refuses the
others. No GPUs here: a temporary directory stands in for /dev (FLEETPLANE_GPU_DEV_DIR) with real
character devices made by mknod — NVIDIA's major 195, which no driver serves on this host, so opening
an allowed node fails with ENXIO (no such device) and a denied one with EPERM (the cgroup said no)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetplane.runtime import gpu
from fleetplane.runtime.logs import read_records
from fleetplane.runtime.replica import ReplicaState, Resources, SandboxError

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bwrap_ok")]

# What the agent reports: CUDA_VISIBLE_DEVICES, the nvidia nodes in its /dev (or the fake dev dir),
# and what opening each of them (and /dev/null) gave.
REPORT = """
import errno, json, os, sys
where = sys.argv[1]
names = sorted(n for n in os.listdir(where) if n.startswith("nvidia"))
opened = {}
for path in [os.path.join(where, n) for n in names] + ["/dev/null"]:
    try:
        os.close(os.open(path, os.O_RDWR))
        opened[path] = "ok"
    except OSError as exc:
        opened[path] = errno.errorcode[exc.errno]
cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
print(json.dumps({"cuda": cuda, "nodes": names, "open": opened}), flush=True)
import time; time.sleep(120)  # stays up while the test reads its cgroup
"""
NODES = {"nvidia0": 0, "nvidia1": 1, "nvidiactl": 255}  # a 2-GPU host


@pytest.fixture
def dev_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "dev"
    where.mkdir()
    for name, minor in NODES.items():
        os.mknod(where / name, 0o666 | stat.S_IFCHR, os.makedev(195, minor))
    monkeypatch.setenv(gpu.DEV_DIR_ENV, str(where))
    return where


def v1_devices(supervisor: Any) -> None:
    if supervisor.cgroups.version != 1:
        pytest.skip("the device cgroup is written on cgroup v1; v2 would need a BPF device program")


async def report(supervisor: Any, spec: Any) -> tuple[Any, dict[str, Any]]:
    """Start the replica and return it (still running) with what its agent reported."""
    replica = await supervisor.start(spec)
    for _ in range(600):
        lines = [str(r["line"]) for r in read_records(replica.log_path)]
        if any(line.startswith("{") for line in lines) or replica.state == ReplicaState.STOPPED:
            break
        await asyncio.sleep(0.05)
    reported = [line for line in lines if line.startswith("{")]
    assert reported, lines
    return replica, json.loads(reported[0])


async def test_a_process_tier_gpu_replica_opens_its_gpu_and_the_cgroup_refuses_the_other(
    supervisor: Any, make_spec: Any, dev_dir: Path
) -> None:
    v1_devices(supervisor)
    resources = Resources(memory_bytes=96 * 2**20, pids=64, gpu_devices=("0",))
    spec = make_spec((sys.executable, "-c", REPORT, str(dev_dir)), tier="process", resources=resources)
    replica, seen = await report(supervisor, spec)
    assert seen == {
        "cuda": "0",
        "nodes": ["nvidia0", "nvidia1", "nvidiactl"],  # the process tier sees the host's dev dir
        "open": {
            f"{dev_dir}/nvidia0": "ENXIO",  # allowed: the kernel has no driver behind 195:0 here
            f"{dev_dir}/nvidia1": "EPERM",  # not allocated: the device cgroup refuses it
            f"{dev_dir}/nvidiactl": "ENXIO",
            "/dev/null": "ok",
        },
    }
    assert replica.cgroup.device_rules() == {*gpu.BASE_RULES, "c 195:0 rwm", "c 195:255 rwm"}


async def test_a_bwrap_replica_with_a_mig_instance_sees_only_its_gpus_nodes(
    supervisor: Any, make_spec: Any, dev_dir: Path
) -> None:
    v1_devices(supervisor)
    resources = Resources(memory_bytes=96 * 2**20, pids=64, gpu_devices=("MIG-1/1g.5gb/0",))
    spec = make_spec((sys.executable, "-c", REPORT, "/dev"), resources=resources)
    replica, seen = await report(supervisor, spec)
    assert seen == {
        "cuda": "MIG-1/1g.5gb/0",
        "nodes": ["nvidia1", "nvidiactl"],  # GPU 1 holds the instance; GPU 0 is not there at all
        "open": {"/dev/nvidia1": "ENXIO", "/dev/nvidiactl": "ENXIO", "/dev/null": "ok"},
    }
    assert replica.cgroup.device_rules() == {*gpu.BASE_RULES, "c 195:1 rwm", "c 195:255 rwm"}


async def test_a_replica_without_a_gpu_keeps_the_default_device_cgroup(
    supervisor: Any, make_spec: Any, dev_dir: Path
) -> None:
    spec = make_spec((sys.executable, "-c", REPORT, "/dev"))
    replica, seen = await report(supervisor, spec)
    assert seen == {"cuda": None, "nodes": [], "open": {"/dev/null": "ok"}}
    assert getattr(replica.cgroup, "device_rules", lambda: None)() is None


async def test_a_process_tier_gpu_is_refused_on_cgroup_v2(supervisor: Any, make_spec: Any) -> None:
    class V2:
        version = 2

    supervisor.cgroups = V2()
    resources = Resources(gpu_devices=("0",))
    with pytest.raises(SandboxError) as refused:
        await supervisor.start(make_spec(tier="process", resources=resources))
    assert "needs cgroup v1 here" in str(refused.value) and "use isolation 'bwrap'" in str(refused.value)
