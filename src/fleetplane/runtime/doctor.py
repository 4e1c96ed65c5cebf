"""`fleetplane doctor`: what the local runtime can do on this host, and why not where it cannot.

Every check does the real thing — a cgroup is created with limits and read back, each tier starts a
sandbox, the microVM probe boots a guest — because "the binary exists" is not "it works here".
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from fleetplane.runtime.cgroups import CgroupError, Limits, detect
from fleetplane.runtime.reaper import is_subreaper, set_subreaper
from fleetplane.runtime.sandbox.policy import MINIMUM_TIER, TIER_ORDER, host_tiers
from fleetplane.runtime.sandbox.seccomp import build_filter, denied_syscalls


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _cgroups() -> list[Check]:
    try:
        driver = detect()
    except CgroupError as exc:
        return [Check("cgroups", False, str(exc))]
    checks = [Check("cgroups", True, f"v{driver.version}; controllers: {', '.join(driver.controllers())}")]
    name = f"doctor-{os.getpid()}"
    try:
        group = driver.create(name, Limits(memory_bytes=64 * 2**20, cpu_millis=500, pids=32))
    except CgroupError as exc:
        checks.append(Check("cgroup limits", False, str(exc)))
        return checks
    group.remove()
    checks.append(Check("cgroup limits", True, "memory, cpu quota and pids written and read back"))
    return checks


def _subreaper() -> Check:
    if set_subreaper() and is_subreaper():
        return Check("child subreaper", True, "prctl(PR_SET_CHILD_SUBREAPER) accepted")
    return Check("child subreaper", False, "the kernel refused PR_SET_CHILD_SUBREAPER: orphans go to init")


def _seccomp() -> Check:
    machine = platform.machine()
    if build_filter(machine) is None:
        return Check("seccomp filter", False, f"no filter is built for {machine}: bwrap runs without one")
    return Check("seccomp filter", True, f"{len(denied_syscalls(machine))} syscalls denied ({machine})")


def run_checks() -> list[Check]:
    checks = _cgroups()
    checks.append(_subreaper())
    checks.append(_seccomp())
    tiers = host_tiers()
    for tier in TIER_ORDER:
        found = tiers[tier]
        checks.append(Check(f"tier {tier}", found.ok, found.reason))
    for trust, floor in MINIMUM_TIER.items():
        usable = [t for t in TIER_ORDER[TIER_ORDER.index(floor) :] if tiers[t].ok]
        detail = f"runs in {usable[0]}" if usable else f"refused: needs {floor} or stronger"
        if not usable and trust == "untrusted" and tiers["gvisor"].ok:
            detail += " (gvisor when allow_degrade_to_gvisor is set)"
        checks.append(Check(f"trust {trust}", bool(usable), detail))
    return checks
