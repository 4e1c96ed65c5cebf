"""The operating-system side of one replica start: the child joins its cgroup between fork and exec,
the supervisor waits for the process itself to exit (not for its pipes), and what is left is killed,
reaped and removed."""

from __future__ import annotations

import asyncio
import ctypes
import os
import resource
import signal
from pathlib import Path

from fleetplane.runtime.cgroups import Cgroup, join
from fleetplane.runtime.reaper import reap_orphans

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded here: no dlopen between fork and exec


def child_setup(procs_files: tuple[Path, ...], rlimits: dict[int, tuple[int, int]]) -> None:
    """Runs in the child between fork and exec: join the cgroup first, so nothing escapes its limits;
    and die with the supervisor (SIGKILL), so a crashed supervisor leaves no replica running unwatched."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    join(procs_files)
    for which, limit in rlimits.items():
        resource.setrlimit(which, limit)


async def wait_exit(process: asyncio.subprocess.Process) -> int:
    """The exit of the process itself. asyncio's `wait()` also waits for its pipes to close, and an
    orphan that inherited them (a daemon the agent started) would hold that off until it exits too.
    A pidfd says when the process ended; `waitid(WNOWAIT)` reads its status and leaves the reaping to
    asyncio's child watcher."""
    if process.returncode is not None:
        return process.returncode
    try:
        fd = os.pidfd_open(process.pid)
    except OSError:  # already reaped, or a kernel without pidfds
        return await process.wait()
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ended
        info = os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOWAIT | os.WNOHANG)  # noqa: ASYNC222 - WNOHANG
    except ChildProcessError:  # the watcher reaped it first: it sets returncode in a moment
        info = None
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    if info is not None:
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
    while process.returncode is None:  # noqa: ASYNC110 - set by the child watcher's callback
        await asyncio.sleep(0.005)
    return process.returncode


def dispose(cgroup: Cgroup, seen: set[int]) -> None:
    """Kill whatever is left in the cgroup, reap the orphans among it, remove the cgroup."""
    seen = seen | cgroup.kill()
    reap_orphans(seen | cgroup.pids())
    cgroup.remove()
    reap_orphans(seen)
