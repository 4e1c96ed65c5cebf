"""A supervisor killed with SIGKILL leaves no replica running unwatched: every tier's processes die
with it (bwrap --die-with-parent; the process tier and runsc through PR_SET_PDEATHSIG)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fleetplane.runtime.supervisor import Supervisor

pytestmark = [pytest.mark.usefixtures("bwrap_ok")]

AGENTS = Path(__file__).parent / "agents"

SUPERVISOR = """
import asyncio, sys
from pathlib import Path
from fleetplane.runtime.replica import ReplicaSpec, ReplicaState
from fleetplane.runtime.supervisor import Supervisor

async def main(root, agents, tier):
    sup = Supervisor(root)
    spec = ReplicaSpec(agent="orphan", replica_id=f"orphan-{tier}", revision="r", tier=tier,
                       argv=(sys.executable, "probe_agent.py"), cwd=agents, log_dir=Path(root) / "logs",
                       network="none")
    replica = await sup.start(spec)
    await replica.wait_for({ReplicaState.READY}, timeout=30)
    await asyncio.sleep(0.5)
    print(" ".join(str(p) for p in sorted(replica.cgroup.pids())), flush=True)
    await asyncio.sleep(600)

asyncio.run(main(*sys.argv[1:]))
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("tier", ["process", "bwrap"])
def test_replicas_die_with_a_killed_supervisor(tmp_path: Path, tier: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SUPERVISOR), str(tmp_path / "runtime"), str(AGENTS), tier],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) >= 2 and all(alive(p) for p in pids)  # the forwarder and the agent (+ bwrap)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [p for p in pids if alive(p)]
    for pid in survivors:  # never leave them running, even when the test fails
        os.kill(pid, signal.SIGKILL)
    # what a restarted supervisor does: sweep the dead one's cgroups, then the replica's directories
    successor = Supervisor(tmp_path / "runtime")
    assert any(name.startswith(f"orphan-{tier}.{proc.pid}.") for name in successor.swept)
    successor.cleanup(successor.paths_for(f"orphan-{tier}"))
    assert survivors == []
