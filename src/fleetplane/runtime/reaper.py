"""The supervisor as a child subreaper: orphans of a replica's process tree are re-parented to it
(not to init), so it sees and reaps them after a whole-cgroup kill instead of leaving zombies that
hold pids in a parent cgroup."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def set_subreaper() -> bool:
    """Make this process a child subreaper; False where the kernel refuses."""
    return _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def is_subreaper() -> bool:
    value = ctypes.c_int(0)
    if _libc().prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) != 0:
        return False
    return value.value == 1


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def reap_orphans(candidates: set[int]) -> list[int]:
    """Reap those of `candidates` that are zombies re-parented to us (never anyone else's children:
    only pids seen in a replica's cgroup are candidates)."""
    reaped = []
    me = os.getpid()
    for pid in candidates:
        info = _stat(pid)
        if info is not None and info[0] == "Z" and info[1] == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
                reaped.append(pid)
    return reaped


def zombie_children() -> list[int]:
    """Our children that are zombies (for tests and `doctor`)."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None and info[0] == "Z" and info[1] == me:
                found.append(int(entry))
    return found


# A tiny subreaper of its own around a command that daemonizes (runsc): its orphans come here, are
# reaped here, and the command's exit status is passed on (a death by signal N as 128+N).
_REAPED_RUN = """
import ctypes, os, signal, subprocess, sys
prctl = ctypes.CDLL(None).prctl
prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
child = subprocess.Popen(sys.argv[1:], preexec_fn=lambda: prctl(1, 9, 0, 0, 0))  # dies with us
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda number, frame: child.send_signal(number))
code = child.wait()
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
sys.exit(code if code >= 0 else 128 - code)
"""


def reaped_argv(argv: list[str]) -> list[str]:
    """`argv` run under its own short-lived subreaper (see `_REAPED_RUN`)."""
    return [sys.executable, "-I", "-S", "-c", _REAPED_RUN, *argv]


def run_reaped(argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """`subprocess.run` for commands that daemonize (runsc, bwrap): run under a short-lived subreaper of
    their own that waits for every descendant, so no orphan ends up a zombie of the caller."""
    return subprocess.run(
        reaped_argv(argv), capture_output=True, timeout=timeout, check=False, start_new_session=True
    )
