"""The same agent under gVisor (runsc --network=none --platform=ptrace): served through its endpoint,
isolated the same way, reaching the gateway only through the bridge."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from fleetplane.runtime.replica import HttpCheck, Probes, ProbeSpec, ReplicaState, Resources

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("runsc_ok")]

READY = Probes(readiness=ProbeSpec(HttpCheck("/healthz"), period=0.2, timeout=2.0, failure_threshold=1))


async def test_the_same_agent_runs_under_gvisor(supervisor: Any, make_spec: Any, http: Any) -> None:
    token = "gv-secret-31337"
    spec = make_spec(tier="gvisor", probes=READY, secrets={"token": token.encode()})
    replica = await supervisor.start(spec)
    assert await replica.wait_for({ReplicaState.READY}, timeout=60) == ReplicaState.READY
    async with http.client(replica) as c:
        response = await c.post("/invoke", json={"q": "hello"})
    assert response.json() == {"echo": {"q": "hello"}, "replica": spec.replica_id}
    assert (await http.get(replica, "/secret?name=token"))["value"] == token
    env = await http.get(replica, "/env")
    assert not any(token in value for value in env.values())
    for host, port in (("127.0.0.1", 5432), ("1.1.1.1", 443)):
        assert (await http.get(replica, f"/connect?host={host}&port={port}"))["result"].startswith("refused")
    assert (await http.get(replica, "/write?path=/usr/evil"))["result"].startswith("denied")
    pids = (await http.get(replica, "/pids"))["pids"]
    assert len(pids) <= 3  # the forwarder and the agent in the Sentry's own pid namespace
    await replica.stop(grace=1)
    assert replica.state == ReplicaState.STOPPED


MEMORY_HOG = "x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n"


async def test_the_memory_limit_holds_under_gvisor(supervisor: Any, make_spec: Any) -> None:
    # the host cgroup holds the Sentry, which allocates the sandbox's memory: the limit binds there
    resources = Resources(cpu_millis=1000, memory_bytes=64 * 2**20, pids=64, disk_bytes=2**20)
    spec = make_spec(
        (sys.executable, "-c", MEMORY_HOG), tier="gvisor", resources=resources, restart_policy="Never"
    )
    replica = await supervisor.start(spec)
    assert await replica.wait_for({ReplicaState.STOPPED}, timeout=60) == ReplicaState.STOPPED
    assert replica.last_exit.reason == "OOMKilled"
