"""The offline seccomp filter: well-formed BPF, and from inside bwrap the denied syscalls fail with
EPERM while ordinary ones work."""

from __future__ import annotations

import platform
import struct
import sys
from typing import Any

import pytest

from fleetplane.runtime.logs import read_records
from fleetplane.runtime.replica import ReplicaState
from fleetplane.runtime.sandbox.seccomp import build_filter, denied_syscalls

PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for name, number, args in [("ptrace", {ptrace}, (0, 0, 0, 0)), ("keyctl", {keyctl}, (0, -3, 0, 0)),
                           ("getpid", {getpid}, (0, 0, 0, 0))]:
    ctypes.set_errno(0)
    result = libc.syscall(number, *args)
    print(name, result, ctypes.get_errno(), flush=True)
"""
GETPID = {"x86_64": 39, "aarch64": 172}


def test_the_filter_is_a_well_formed_program() -> None:
    program = build_filter("x86_64")
    assert program is not None
    insns = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    denied = denied_syscalls("x86_64")
    assert len(insns) == 3 + 1 + len(set(denied.values())) + 3
    assert insns[-3:] == [(6, 0, 0, 0x7FFF0000), (6, 0, 0, 0x00050001), (6, 0, 0, 0x80000000)]
    for index, (code, jt, _, _) in enumerate(insns[4:-3], start=4):  # every match jumps to ERRNO
        assert code == 0x15 and index + 1 + jt == len(insns) - 2
    assert build_filter("sparc") is None


@pytest.mark.anyio
@pytest.mark.usefixtures("bwrap_ok")
async def test_denied_syscalls_fail_with_eperm_inside_bwrap(supervisor: Any, make_spec: Any) -> None:
    machine = platform.machine()
    if machine not in GETPID:
        pytest.skip(f"no seccomp filter is built for {machine}")
    table = denied_syscalls()
    code = PROBE.format(ptrace=table["ptrace"], keyctl=table["keyctl"], getpid=GETPID[machine])
    replica = await supervisor.start(make_spec((sys.executable, "-c", code), restart_policy="Never"))
    await replica.wait_for({ReplicaState.STOPPED}, timeout=20)
    lines = {str(r["line"]).split()[0]: str(r["line"]).split()[1:] for r in read_records(replica.log_path)}
    assert lines["ptrace"] == ["-1", "1"]  # EPERM from the filter (PTRACE_TRACEME succeeds otherwise)
    assert lines["keyctl"] == ["-1", "1"]
    assert lines["getpid"][1] == "0" and int(lines["getpid"][0]) > 0
