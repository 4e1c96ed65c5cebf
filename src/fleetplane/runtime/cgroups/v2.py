"""cgroup v2: one unified tree; controllers enabled for children through cgroup.subtree_control."""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path

from fleetplane.runtime.cgroups import (
    CPU_PERIOD_US,
    PARENT,
    CgroupError,
    Limits,
    read_int,
    why,
    write_checked,
)
from fleetplane.runtime.cgroups.v1 import _kill_all, _page_round, _rmdir_retry, _stat

NEEDED = ("memory", "cpu", "pids")


class GroupV2:
    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.dir = root / PARENT / name

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return (self.dir / "cgroup.procs",)

    def pids(self) -> set[int]:
        with contextlib.suppress(FileNotFoundError):
            return {int(p) for p in (self.dir / "cgroup.procs").read_text().split()}
        return set()

    def oom_kills(self) -> int:
        return _stat(self.dir / "memory.events", "oom_kill")

    def nr_throttled(self) -> int:
        return _stat(self.dir / "cpu.stat", "nr_throttled")

    def memory_current(self) -> int:
        return read_int(self.dir / "memory.current")

    def kill(self) -> set[int]:
        members = self.pids()  # who is killed, for reaping (the kernel's kill below says nothing)
        kill_file = self.dir / "cgroup.kill"
        if kill_file.exists():  # Linux 5.14+: the kernel kills the whole tree atomically
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        return members | _kill_all(self)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            _rmdir_retry(self.dir)


class CgroupV2:
    version = 2

    def __init__(self, root: Path) -> None:
        self.root = root

    def controllers(self) -> list[str]:
        return (self.root / "cgroup.controllers").read_text().split()

    def parents(self) -> list[Path]:
        return [self.root / PARENT]

    def _enable(self, where: Path) -> None:
        have = set((where / "cgroup.controllers").read_text().split())
        missing = [c for c in NEEDED if c not in have]
        if missing:
            raise CgroupError(f"cgroup v2 at {where} lacks controllers: {', '.join(missing)}")
        enabled = set((where / "cgroup.subtree_control").read_text().split())
        for c in NEEDED:
            if c not in enabled:
                try:
                    (where / "cgroup.subtree_control").write_text(f"+{c}")
                except OSError as exc:
                    if exc.errno != errno.EBUSY or where != self.root or not self._evacuate_root():
                        raise CgroupError(f"cannot enable {c} in {where}: {why(exc)}") from exc
                    (where / "cgroup.subtree_control").write_text(f"+{c}")

    def _evacuate_root(self) -> bool:
        """Inside a container's cgroup namespace the root holds the container's own processes, and a
        cgroup with processes cannot hand controllers to children ("no internal processes"): move them
        to a leaf, as container init systems do. Only done at the namespace root."""
        leaf = self.root / "fleetplane-host"
        leaf.mkdir(exist_ok=True)
        moved = False
        for pid in (self.root / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # gone meanwhile, or a kernel thread
                (leaf / "cgroup.procs").write_text(pid)
                moved = True
        return moved

    def create(self, name: str, limits: Limits) -> GroupV2:
        parent = self.root / PARENT
        self._enable(self.root)
        parent.mkdir(exist_ok=True)
        self._enable(parent)
        group = GroupV2(self.root, name)
        try:
            group.dir.mkdir()
        except FileExistsError as exc:
            raise CgroupError(f"cgroup {group.dir} exists already: a fresh cgroup per start") from exc
        write_checked(group.dir / "memory.max", str(_page_round(limits.memory_bytes)))
        if (group.dir / "memory.swap.max").exists():
            write_checked(group.dir / "memory.swap.max", "0")
        write_checked(group.dir / "cpu.max", f"{limits.cpu_quota_us} {CPU_PERIOD_US}")
        write_checked(group.dir / "pids.max", str(limits.pids))
        return group
