"""Self-healing: a killed replica comes back, a failing liveness probe restarts it, a crash loop backs
off (CrashLoopBackOff doubling to its cap), and restart policies are honoured."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from fleetplane.runtime.cgroups import CgroupError
from fleetplane.runtime.replica import Backoff, ExecCheck, HttpCheck, Probes, ProbeSpec, ReplicaState
from fleetplane.runtime.supervisor import Supervisor

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bwrap_ok")]

FAST_PROBE = {"period": 0.1, "timeout": 1.0}
PROBES = Probes(
    startup=ProbeSpec(HttpCheck("/healthz"), failure_threshold=100, **FAST_PROBE),
    readiness=ProbeSpec(HttpCheck("/healthz"), failure_threshold=1, **FAST_PROBE),
    liveness=ProbeSpec(HttpCheck("/healthz"), failure_threshold=2, **FAST_PROBE),
)


def agent_pid(replica: Any) -> int:
    for pid in replica.cgroup.pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"probe_agent.py" in cmdline and b"forwarder" not in cmdline:
            return pid
    raise AssertionError("no agent process in the replica's cgroup")


async def test_a_killed_replica_is_restarted_and_serves_again(
    supervisor: Any, make_spec: Any, http: Any
) -> None:
    replica = await supervisor.start(make_spec(probes=PROBES))
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    states: list[str] = []
    replica.on_change(lambda r, old, new: states.append(new.value))
    os.kill(agent_pid(replica), signal.SIGKILL)
    await replica.wait_for({ReplicaState.BACKOFF}, timeout=20)
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    assert replica.last_exit.reason == "Signal" and replica.last_exit.signal == "SIGKILL"
    assert replica.restarts == 1
    assert replica.backoff_delays == [0.05]
    exited = states.index("exited")  # readiness may have seen it go before the exit did: "unready"
    assert states[exited : exited + 3] == ["exited", "backoff", "starting"] and states[-1] == "ready"
    async with http.client(replica) as c:
        response = await c.post("/invoke", json={"q": "still there?"})
    assert response.status_code == 200
    assert response.json() == {"echo": {"q": "still there?"}, "replica": replica.spec.replica_id}


async def test_a_failing_liveness_probe_restarts_the_replica(
    supervisor: Any, make_spec: Any, http: Any
) -> None:
    replica = await supervisor.start(make_spec(probes=PROBES))
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    await http.get(replica, "/sick")  # from now on /healthz answers 500
    await replica.wait_for({ReplicaState.BACKOFF}, timeout=20)
    assert replica.last_exit.reason == "ProbeFailed"
    assert replica.last_exit.detail == "liveness probe failed: GET /healthz: 500"
    await replica.wait_for({ReplicaState.READY}, timeout=20)  # a fresh /tmp: healthy again
    assert replica.restarts == 1


async def test_a_crash_loop_backs_off_doubling_to_the_cap(supervisor: Any, make_spec: Any) -> None:
    spec = make_spec(("/bin/sh", "-c", "echo crashing; exit 3"))
    replica = await supervisor.start(spec)
    while replica.restarts < 5:
        await replica.wait_for({ReplicaState.STARTING}, timeout=20)
        await replica.wait_for({ReplicaState.BACKOFF}, timeout=20)
    await replica.stop(grace=0.1)
    assert replica.last_exit.reason == "Exit" and replica.last_exit.code == 3
    assert replica.backoff_delays[:6] == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]
    assert replica.state == ReplicaState.STOPPED


async def test_the_back_off_resets_after_a_long_enough_run(supervisor: Any, make_spec: Any) -> None:
    spec = make_spec(("/bin/sh", "-c", "exit 1"), backoff=Backoff(initial=0.05, maximum=0.4, reset_after=0))
    replica = await supervisor.start(spec)
    while len(replica.backoff_delays) < 3:
        await replica.wait_for({ReplicaState.STARTING}, timeout=20)
        await replica.wait_for({ReplicaState.BACKOFF}, timeout=20)
    assert replica.backoff_delays[:3] == [0.05, 0.05, 0.05]


@pytest.mark.parametrize(("policy", "command", "restarted"), [
    ("OnFailure", "exit 0", False),
    ("OnFailure", "exit 2", True),
    ("Never", "exit 2", False),
    ("Always", "exit 0", True),
])  # fmt: skip
async def test_restart_policies(
    supervisor: Any, make_spec: Any, policy: str, command: str, restarted: bool
) -> None:
    replica = await supervisor.start(make_spec(("/bin/sh", "-c", command), restart_policy=policy))
    state = await replica.wait_for({ReplicaState.BACKOFF, ReplicaState.STOPPED}, timeout=20)
    assert state == (ReplicaState.BACKOFF if restarted else ReplicaState.STOPPED)
    assert replica.last_exit.reason == "Exit" and replica.last_exit.code == int(command.split()[1])


async def test_exec_probes_run_inside_the_sandbox(supervisor: Any, make_spec: Any, http: Any) -> None:
    # /tmp/ready exists only inside this sandbox's own /tmp: the probe must run in there to see it
    ready = ProbeSpec(ExecCheck(("/bin/sh", "-c", "test -f /tmp/ready")), failure_threshold=1, **FAST_PROBE)
    alive = ProbeSpec(
        ExecCheck(("/bin/sh", "-c", "test ! -f /tmp/unhealthy")), failure_threshold=2, **FAST_PROBE
    )
    replica = await supervisor.start(make_spec(probes=Probes(readiness=ready, liveness=alive)))
    await http.get(replica, "/healthz")  # serving, but not ready: its readiness probe fails
    assert replica.state in (ReplicaState.STARTING, ReplicaState.UNREADY)
    await http.get(replica, "/write?path=/tmp/ready")
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    await http.get(replica, "/sick")
    await replica.wait_for({ReplicaState.BACKOFF}, timeout=20)
    assert replica.last_exit.reason == "ProbeFailed"
    assert replica.last_exit.detail.startswith("liveness probe failed: exec /bin/sh: exit 1")


async def test_an_http_probe_on_another_port_is_asked_from_inside(supervisor: Any, make_spec: Any) -> None:
    on_second = ProbeSpec(HttpCheck("/healthz", port=9090), failure_threshold=1, **FAST_PROBE)
    replica = await supervisor.start(
        make_spec(probes=Probes(readiness=on_second), env={"SECOND_PORT": "9090"})
    )
    assert await replica.wait_for({ReplicaState.READY}, timeout=20) == ReplicaState.READY
    nothing_there = ProbeSpec(HttpCheck("/healthz", port=9091), failure_threshold=1, **FAST_PROBE)
    other = await supervisor.start(make_spec(probes=Probes(startup=nothing_there), restart_policy="Never"))
    await other.wait_for({ReplicaState.STOPPED}, timeout=20)
    assert other.last_exit.reason == "ProbeFailed"
    assert other.last_exit.detail == "startup probe failed: GET :9091/healthz: ConnectionRefusedError"


class RefusingCgroups:
    """A host whose cgroups refuse every limit (what a read-back mismatch looks like)."""

    version = 1

    def controllers(self) -> list[str]:
        return []

    def parents(self) -> list[Path]:
        return []

    def create(self, name: str, limits: Any) -> Any:
        raise CgroupError(
            f"/sys/fs/cgroup/pids/fleetplane/{name}/pids.max reads back 'max' after writing '64'"
        )


async def test_a_start_without_its_limits_backs_off_like_a_crash(make_spec: Any, tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "runtime", cgroups=RefusingCgroups())
    try:
        replica = await supervisor.start(make_spec())
        await replica.wait_for({ReplicaState.BACKOFF}, timeout=20)
        assert replica.last_exit.reason == "Exit" and replica.last_exit.code is None
        assert "reads back 'max' after writing '64'" in replica.last_exit.detail
        assert replica.pid is None
    finally:
        await supervisor.close(grace=0.1)
    assert replica.state == ReplicaState.STOPPED
