"""CrashLoopBackOff with its real defaults (10 s doubling to 5 min, reset after 10 min up), driven by an
injected clock: the supervisor waits on the clock, the test moves it, nothing sleeps for minutes."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fleetplane.runtime.replica import Backoff, ReplicaState
from fleetplane.runtime.supervisor import Supervisor
from fleetplane.state.clock import ManualClock

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("cgroups_ok")]


@pytest.fixture
async def clock_supervisor(tmp_path: Path) -> AsyncIterator[tuple[Supervisor, ManualClock]]:
    clock = ManualClock()
    sup = Supervisor(tmp_path / "runtime", clock=clock)
    yield sup, clock
    await sup.close(grace=0.2)


async def next_backoff(replica: Any, count: int) -> float:
    while len(replica.backoff_delays) < count:
        await replica.wait_for({ReplicaState.BACKOFF}, timeout=20)
        await asyncio.sleep(0)
    return float(replica.backoff_delays[count - 1])


async def test_the_default_back_off_doubles_to_five_minutes(clock_supervisor: Any, make_spec: Any) -> None:
    sup, clock = clock_supervisor
    replica = await sup.start(make_spec(("/bin/sh", "-c", "exit 1"), tier="process", backoff=Backoff()))
    for n, expected in enumerate([10, 20, 40, 80, 160, 300, 300], start=1):
        assert await next_backoff(replica, n) == expected
        assert replica.restarts == n - 1  # waiting: not restarted until the clock has moved
        clock.advance(expected)
    assert replica.last_exit.reason == "Exit" and replica.last_exit.code == 1


async def test_ten_minutes_up_resets_the_back_off(
    clock_supervisor: Any, make_spec: Any, tmp_path: Path
) -> None:
    sup, clock = clock_supervisor
    work = tmp_path / "work"
    work.mkdir()
    # crashes on its first two starts, then stays up
    script = (
        'n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ "$n" -ge 2 ] && exec sleep 60; exit 1'
    )
    replica = await sup.start(
        make_spec(("/bin/sh", "-c", script), tier="process", cwd=str(work), backoff=Backoff())
    )
    assert await next_backoff(replica, 1) == 10
    clock.advance(10)
    assert await next_backoff(replica, 2) == 20
    clock.advance(20)
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    clock.advance(600)  # up for ten minutes
    for pid in replica.cgroup.pids():
        os.kill(pid, signal.SIGKILL)
    assert await next_backoff(replica, 3) == 10  # not 40: the count was reset
