"""Stopping: a replica between starts (in back-off, or a restart still coming up, before its agent
exists) stops at once instead of waiting out its stop grace, and a clean stop leaves no traceback in
the replica's log (open connections through the endpoint are closed quietly).

The grace here is an hour and each stop must end within a minute: what is asserted is that the stop
did not wait for the grace, not how fast it was."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from fleetplane.runtime.logs import read_records
from fleetplane.runtime.replica import Backoff, HttpCheck, Probes, ProbeSpec, ReplicaState

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bwrap_ok")]

HOUR = 3600.0
READINESS = Probes(readiness=ProbeSpec(HttpCheck("/healthz"), period=0.1, timeout=1.0, failure_threshold=1))


def lines(replica: Any) -> list[str]:
    return [str(r["line"]) for r in read_records(replica.log_path)]


async def test_a_replica_in_back_off_stops_at_once(supervisor: Any, make_spec: Any) -> None:
    spec = make_spec(
        ("/bin/sh", "-c", "exit 3"), backoff=Backoff(initial=HOUR, maximum=HOUR), stop_grace=HOUR
    )
    replica = await supervisor.start(spec)
    await replica.wait_for({ReplicaState.BACKOFF}, timeout=20)
    await asyncio.wait_for(replica.stop(), 60)
    assert replica.state == ReplicaState.STOPPED
    assert replica.restarts == 0 and replica.last_exit.code == 3


async def _stop_while_coming_up(replica: Any) -> bool:
    """Stop the replica in the moment its new process exists but its forwarder does not listen yet
    (so its agent is not started); False when that moment was missed."""
    control = replica.paths.run_dir / "control.sock"
    while replica.pid is None:  # noqa: ASYNC110 - the moment has no event of its own
        await asyncio.sleep(0.001)
    if control.exists():
        return False
    await asyncio.wait_for(replica.stop(), 60)
    return True


async def test_a_restart_still_coming_up_stops_at_once_and_its_agent_never_runs(
    supervisor: Any, make_spec: Any
) -> None:
    for _ in range(5):
        spec = make_spec(probes=READINESS, backoff=Backoff(initial=0.2), stop_grace=HOUR)
        replica = await supervisor.start(spec)
        await replica.wait_for({ReplicaState.READY}, timeout=20)
        assert lines(replica).count("agent starting") == 1
        os.kill(replica.pid, signal.SIGKILL)  # the sandbox dies: a restart after the back-off
        await replica.wait_for({ReplicaState.BACKOFF}, timeout=20)
        await replica.wait_for({ReplicaState.STARTING}, timeout=20)
        if await _stop_while_coming_up(replica):
            break
        await replica.stop(grace=0.1)
    else:
        pytest.fail("never caught a restart before its forwarder listened")
    assert replica.state == ReplicaState.STOPPED and replica.restarts == 1
    assert lines(replica).count("agent starting") == 1  # the restarted agent was never started
    assert replica.cgroup.pids() == set()


async def test_a_clean_stop_writes_no_traceback_with_a_connection_open(
    supervisor: Any, make_spec: Any
) -> None:
    replica = await supervisor.start(make_spec(probes=READINESS))
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    # A client that keeps its connection through the endpoint open (as keep-alive clients do) over
    # the stop: the forwarder still has it when the agent exits.
    reader, writer = await asyncio.open_unix_connection(replica.endpoint)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: agent\r\n\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.0 200")
    await replica.stop()
    writer.close()
    assert replica.state == ReplicaState.STOPPED
    logged = lines(replica)
    assert "agent starting" in logged
    assert [line for line in logged if "Traceback" in line or "CancelledError" in line] == []
