"""Limits hold, asserted by behaviour: OOM kill reported as such, fork bomb stopped at pids.max, CPU
throttled (cpu.stat nr_throttled), writes stopped at the disk limit; and every limit reads back."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from fleetplane.runtime.logs import read_records
from fleetplane.runtime.replica import ReplicaState, Resources

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bwrap_ok")]

MEMORY_HOG = "x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n"
FORK_BOMB = """
import os, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
except BlockingIOError as exc:
    print(f"fork failed after {children} children: errno {exc.errno}", flush=True)
"""
DISK_FILLER = """
written = 0
try:
    with open("/tmp/fill", "wb") as f:
        while True:
            f.write(b"x" * 65536)
            f.flush()
            written += 65536
except OSError as exc:
    print(f"stopped after {written} bytes: errno {exc.errno}", flush=True)
"""
CPU_HOG = "while True:\n    pass\n"


def lines(replica: Any) -> list[str]:
    return [str(r["line"]) for r in read_records(replica.log_path)]


async def test_a_memory_hog_is_oom_killed_and_reported_so(supervisor: Any, make_spec: Any) -> None:
    resources = Resources(cpu_millis=1000, memory_bytes=64 * 2**20, pids=64, disk_bytes=2**20)
    spec = make_spec((sys.executable, "-c", MEMORY_HOG), resources=resources, restart_policy="Never")
    replica = await supervisor.start(spec)
    assert await replica.wait_for({ReplicaState.STOPPED}, timeout=60) == ReplicaState.STOPPED
    assert replica.last_exit.reason == "OOMKilled"
    assert replica.last_exit.signal == "SIGKILL"
    assert replica.last_exit.code == 137
    assert replica.restarts == 0


async def test_a_fork_bomb_stops_at_the_pids_limit(supervisor: Any, make_spec: Any) -> None:
    resources = Resources(cpu_millis=1000, memory_bytes=128 * 2**20, pids=24, disk_bytes=2**20)
    spec = make_spec((sys.executable, "-c", FORK_BOMB), resources=resources, restart_policy="Never")
    replica = await supervisor.start(spec)
    await replica.wait_for({ReplicaState.STOPPED}, timeout=60)
    assert replica.last_exit.reason == "Exit" and replica.last_exit.code == 0
    [report] = [line for line in lines(replica) if line.startswith("fork failed")]
    children = int(report.split()[3])
    assert report.endswith("errno 11")  # EAGAIN from the pids controller
    assert 0 < children < 24  # bwrap, its init, the forwarder and the bomb hold some of the 24


async def test_a_cpu_hog_is_throttled(supervisor: Any, make_spec: Any) -> None:
    resources = Resources(cpu_millis=100, memory_bytes=64 * 2**20, pids=16, disk_bytes=2**20)
    replica = await supervisor.start(make_spec((sys.executable, "-c", CPU_HOG), resources=resources))
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    for _ in range(100):
        if replica.cgroup.nr_throttled() > 0:
            break
        await asyncio.sleep(0.05)
    assert replica.cgroup.nr_throttled() > 0
    await replica.stop(grace=0.2)


async def test_writes_stop_at_the_disk_limit(supervisor: Any, make_spec: Any) -> None:
    resources = Resources(cpu_millis=1000, memory_bytes=96 * 2**20, pids=16, disk_bytes=2 * 2**20)
    spec = make_spec((sys.executable, "-c", DISK_FILLER), resources=resources, restart_policy="Never")
    replica = await supervisor.start(spec)
    await replica.wait_for({ReplicaState.STOPPED}, timeout=30)
    [report] = [line for line in lines(replica) if line.startswith("stopped after")]
    written = int(report.split()[2])
    assert report.endswith("errno 28")  # ENOSPC
    assert 0 < written <= 2 * 2**20


async def test_limits_are_written_and_read_back(supervisor: Any, make_spec: Any) -> None:
    resources = Resources(cpu_millis=250, memory_bytes=100_000_001, pids=40, disk_bytes=2**20)
    replica = await supervisor.start(make_spec(resources=resources))
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    group = replica.cgroup
    if supervisor.cgroups.version == 1:
        root = supervisor.cgroups.root
        memory = (root / "memory/fleetplane" / group.name / "memory.limit_in_bytes").read_text()
        quota = (root / "cpu/fleetplane" / group.name / "cpu.cfs_quota_us").read_text()
        pids = (root / "pids/fleetplane" / group.name / "pids.max").read_text()
    else:
        base = supervisor.cgroups.root / "fleetplane" / group.name
        memory = (base / "memory.max").read_text()
        quota = (base / "cpu.max").read_text().split()[0]
        pids = (base / "pids.max").read_text()
    assert int(memory) == 100_003_840  # rounded up to whole pages, as the kernel would
    assert int(quota) == 25_000  # 250m of a 100 ms period
    assert int(pids) == 40
    await replica.stop(grace=0.2)
    assert group.procs_files and not any(p.parent.exists() for p in group.procs_files)  # removed
