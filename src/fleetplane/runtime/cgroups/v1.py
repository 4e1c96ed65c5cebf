"""cgroup v1: one directory per controller hierarchy (memory, cpu, pids), mounted side by side.

A replica with devices to allow (a GPU replica) also gets a `devices` cgroup: `a` denied, then only its
allow list, read back from `devices.list` — it opens its GPUs and the ordinary /dev nodes, no other.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from fleetplane.runtime.cgroups import (
    CPU_PERIOD_US,
    PARENT,
    Cgroup,
    CgroupError,
    Limits,
    read_int,
    why,
    write_checked,
)

CONTROLLERS = ("memory", "cpu", "pids")
DEVICES = "devices"


class GroupV1:
    def __init__(self, root: Path, name: str, *, devices: bool = False) -> None:
        self.name = name
        self._dirs = {c: root / c / PARENT / name for c in (*CONTROLLERS, *((DEVICES,) if devices else ()))}

    def device_rules(self) -> set[str] | None:
        """What the device cgroup allows (`devices.list`), or None when it has none of its own."""
        if DEVICES not in self._dirs:
            return None
        return set((self._dirs[DEVICES] / "devices.list").read_text().split("\n")) - {""}

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return tuple(d / "cgroup.procs" for d in self._dirs.values())

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.procs_files:
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in path.read_text().split())
        return found

    def oom_kills(self) -> int:
        with contextlib.suppress(FileNotFoundError):
            for line in (self._dirs["memory"] / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def nr_throttled(self) -> int:
        return _stat(self._dirs["cpu"] / "cpu.stat", "nr_throttled")

    def memory_current(self) -> int:
        return read_int(self._dirs["memory"] / "memory.usage_in_bytes")

    def kill(self) -> set[int]:
        return _kill_all(self)

    def remove(self) -> None:
        for d in self._dirs.values():
            with contextlib.suppress(FileNotFoundError):
                _rmdir_retry(d)


class CgroupV1:
    version = 1

    def __init__(self, root: Path) -> None:
        self.root = root

    def controllers(self) -> list[str]:
        return [c for c in ("memory", "cpu", "cpuacct", "pids", "devices") if (self.root / c).is_dir()]

    def parents(self) -> list[Path]:
        return [self.root / c / PARENT for c in (*CONTROLLERS, DEVICES)]

    def create(self, name: str, limits: Limits) -> GroupV1:
        if limits.devices is not None and not (self.root / DEVICES).is_dir():
            raise CgroupError(f"no devices controller under {self.root}: cannot limit which devices open")
        group = GroupV1(self.root, name, devices=limits.devices is not None)
        for controller, d in group._dirs.items():
            try:
                d.mkdir(parents=True, exist_ok=False)
            except FileExistsError as exc:
                raise CgroupError(f"cgroup {d} exists already: a fresh cgroup per start") from exc
            except OSError as exc:
                raise CgroupError(f"cannot create {controller} cgroup {d}: {why(exc)}") from exc
        mem, cpu, pids = group._dirs["memory"], group._dirs["cpu"], group._dirs["pids"]
        write_checked(mem / "memory.limit_in_bytes", str(_page_round(limits.memory_bytes)))
        if (mem / "memory.memsw.limit_in_bytes").exists():  # swap accounting on: no escape into swap
            write_checked(mem / "memory.memsw.limit_in_bytes", str(_page_round(limits.memory_bytes)))
        write_checked(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        write_checked(cpu / "cpu.cfs_quota_us", str(limits.cpu_quota_us))
        write_checked(pids / "pids.max", str(limits.pids))
        if limits.devices is not None:
            _allow_only(group._dirs[DEVICES], limits.devices)
        return group


def _allow_only(group: Path, rules: tuple[str, ...]) -> None:
    """Deny every device, allow `rules`, and check `devices.list` says exactly that."""
    try:
        (group / "devices.deny").write_text("a")
        for rule in rules:
            (group / "devices.allow").write_text(rule)
        listed = set((group / "devices.list").read_text().split("\n")) - {""}
    except OSError as exc:
        raise CgroupError(f"cannot set the device cgroup {group}: {why(exc)}") from exc
    if listed != set(rules):
        raise CgroupError(f"{group}/devices.list reads {sorted(listed)} after allowing {sorted(rules)}")


def _page_round(n: int) -> int:
    page = os.sysconf("SC_PAGE_SIZE")
    return (n + page - 1) // page * page


def _stat(path: Path, key: str) -> int:
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0


def _kill_all(group: Cgroup) -> set[int]:
    """SIGKILL until empty: a process may fork between reading cgroup.procs and the kill. Returns every
    pid killed — one forked during the kill is seen by a later round, and a dead process leaves
    cgroup.procs at once, so this is the only record of it for reaping its zombie."""
    pids_of = group.pids
    killed: set[int] = set()
    for _ in range(50):
        pids = pids_of()
        if not pids:
            return killed
        killed |= pids
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    return killed


def _rmdir_retry(d: Path) -> None:
    # a killed process leaves its cgroup a moment after it is reaped
    for _ in range(100):
        try:
            d.rmdir()
            return
        except OSError:
            time.sleep(0.02)
    d.rmdir()
