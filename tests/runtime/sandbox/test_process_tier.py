"""The process tier (trusted agents): cgroup limits only, free ports on the host network; and the
supervisor as a child subreaper reaping the orphans a replica leaves behind."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from fleetplane.runtime.reaper import is_subreaper, zombie_children
from fleetplane.runtime.replica import HttpCheck, Probes, ProbeSpec, ReplicaState

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("cgroups_ok")]


def new_zombies(before: set[int]) -> list[int]:
    """Our zombie children that were not there before the test: this replica's. (Another test's
    leftovers — a server subprocess's sandbox orphaned to this process once it became a subreaper —
    are not this test's to judge.)"""
    return sorted(set(zombie_children()) - before)


def describe(pids: list[int]) -> list[str]:
    """pid and command name of each zombie, for the failure message."""
    names = []
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            names.append(f.read().split(")")[0] + ")")
    return names


READY = Probes(readiness=ProbeSpec(HttpCheck("/healthz"), period=0.1, timeout=1.0, failure_threshold=1))


async def test_two_process_replicas_share_the_host_without_port_clashes(
    supervisor: Any, make_spec: Any, http: Any
) -> None:
    spec = {"tier": "process", "probes": READY, "argv": (sys.executable, "probe_agent.py")}
    first = await supervisor.start(make_spec(**spec))
    second = await supervisor.start(make_spec(**spec))
    await asyncio.gather(*(r.wait_for({ReplicaState.READY}, timeout=20) for r in (first, second)))
    ports = {(await http.get(r, "/env"))["PORT"] for r in (first, second)}
    assert len(ports) == 2  # each got its own free port


async def test_orphans_are_reaped_by_the_subreaper(supervisor: Any, make_spec: Any) -> None:
    assert supervisor.subreaper and is_subreaper()
    before = set(zombie_children())
    # the subshell exits at once: its `sleep` is orphaned and re-parented to the supervisor
    command = "(sleep 60 &) ; echo spawned; exec sleep 60"
    replica = await supervisor.start(make_spec(("/bin/sh", "-c", command), tier="process"))
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    for _ in range(50):
        if len(replica.cgroup.pids()) >= 3:
            break
        await asyncio.sleep(0.05)
    assert len(replica.cgroup.pids()) >= 3  # forwarder, sh (now sleep), the orphaned sleep
    await replica.stop(grace=0.2)
    assert new_zombies(before) == [], describe(new_zombies(before))


async def test_an_exit_is_seen_even_while_a_daemon_holds_the_output(supervisor: Any, make_spec: Any) -> None:
    # the background sleep keeps stdout open: the exit must not wait for it (asyncio's wait() would)
    before = set(zombie_children())
    spec = make_spec(
        ("/bin/sh", "-c", "sleep 60 & echo started; exit 3"), tier="process", restart_policy="Never"
    )
    replica = await supervisor.start(spec)
    assert await replica.wait_for({ReplicaState.STOPPED}, timeout=20) == ReplicaState.STOPPED
    assert replica.last_exit.reason == "Exit" and replica.last_exit.code == 3
    assert new_zombies(before) == [], describe(new_zombies(before))
