"""A seccomp filter built offline: a classic BPF program, no libseccomp needed.

A deny list (EPERM) of the syscalls a contained agent has no business making and that escapes and
kernel exploits lean on: mounting, namespaces, module loading, kexec, ptrace and cross-process memory,
bpf, perf, userfaultfd, keyrings, clock and host setting. Anything not of the native architecture (the
x32 ABI, 32-bit entry points) is killed, so the deny list cannot be sidestepped through another ABI.
bwrap loads it with `--seccomp FD` right before exec'ing the forwarder.
"""

from __future__ import annotations

import os
import platform
import struct

# struct sock_filter opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
_EPERM = 1
_X32_BIT = 0x40000000

# name → number for the architectures we build a filter for
_DENY: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "mount": 165, "umount2": 166, "pivot_root": 155, "swapon": 167, "swapoff": 168,
            "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
            "init_module": 175, "delete_module": 176, "quotactl": 179, "acct": 163,
            "settimeofday": 164, "adjtimex": 159, "clock_settime": 227, "clock_adjtime": 305,
            "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
            "kexec_load": 246, "kexec_file_load": 320, "finit_module": 313, "bpf": 321,
            "perf_event_open": 298, "userfaultfd": 323, "add_key": 248, "request_key": 249,
            "keyctl": 250, "unshare": 272, "setns": 308, "name_to_handle_at": 303,
            "open_by_handle_at": 304, "lookup_dcookie": 212, "open_tree": 428, "move_mount": 429,
            "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "mount": 40, "umount2": 39, "pivot_root": 41, "swapon": 224, "swapoff": 225,
            "reboot": 142, "sethostname": 161, "setdomainname": 162, "init_module": 105,
            "delete_module": 106, "quotactl": 60, "acct": 89, "settimeofday": 170,
            "adjtimex": 171, "clock_settime": 112, "clock_adjtime": 266, "ptrace": 117,
            "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "kexec_load": 104,
            "kexec_file_load": 294, "finit_module": 273, "bpf": 280, "perf_event_open": 241,
            "userfaultfd": 282, "add_key": 217, "request_key": 218, "keyctl": 219,
            "unshare": 97, "setns": 268, "name_to_handle_at": 264, "open_by_handle_at": 265,
            "lookup_dcookie": 18, "open_tree": 428, "move_mount": 429, "fsopen": 430,
            "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        },
    ),
}  # fmt: skip


def denied_syscalls(machine: str | None = None) -> dict[str, int]:
    return dict(_DENY.get(machine or platform.machine(), (0, {}))[1])


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(machine: str | None = None) -> bytes | None:
    """The BPF program as bytes (an array of struct sock_filter), or None for an unknown architecture."""
    arch = machine or platform.machine()
    if arch not in _DENY:
        return None
    audit_arch, table = _DENY[arch]
    numbers = sorted(set(table.values()))
    n = len(numbers)
    # layout: 0 load arch; 1 arch check; 2 load nr; 3 x32 check (x86_64 only); then one jeq per number;
    # then ALLOW, ERRNO, KILL.
    prog = [_insn(_LD_W_ABS, 0, 0, 4)]
    checks = n + (1 if arch == "x86_64" else 0)
    # from insn 1: if arch matches fall through, else jump to KILL (past load, checks, ALLOW, ERRNO)
    prog.append(_insn(_JEQ_K, 0, 1 + checks + 2, audit_arch))
    prog.append(_insn(_LD_W_ABS, 0, 0, 0))
    remaining = checks
    if arch == "x86_64":
        remaining -= 1
        prog.append(_insn(_JGE_K, remaining + 2, 0, _X32_BIT))  # → KILL
    for number in numbers:
        remaining -= 1
        prog.append(_insn(_JEQ_K, remaining + 1, 0, number))  # → ERRNO
    prog.append(_insn(_RET_K, 0, 0, _ALLOW))
    prog.append(_insn(_RET_K, 0, 0, _ERRNO | _EPERM))
    prog.append(_insn(_RET_K, 0, 0, _KILL_PROCESS))
    return b"".join(prog)


def filter_fd(machine: str | None = None) -> int | None:
    """A memfd holding the filter, positioned at 0, for `bwrap --seccomp FD`; None when unsupported."""
    program = build_filter(machine)
    if program is None:
        return None
    fd = os.memfd_create("fleetplane-seccomp", 0)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
