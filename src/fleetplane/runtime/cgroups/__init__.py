"""cgroups for replicas: one fresh cgroup per start under a `fleetplane` parent, v1 or v2 (detected).

A fresh cgroup per start (never reused) because `pids.current` of a reused one lags seconds after its
processes exit, and counters such as `oom_kill` must start at zero for an exit to be classified.
Limits are written and then read back: a limit the kernel silently rounded or ignored is an error,
not a surprise at 3 a.m.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DEFAULT_ROOT = Path("/sys/fs/cgroup")
PARENT = "fleetplane"
CPU_PERIOD_US = 100_000


class CgroupError(RuntimeError):
    """A cgroup could not be created, or a limit did not hold when read back."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    cpu_millis: int
    pids: int
    # The device cgroup's allow list after denying all (GPU replicas); None leaves devices alone.
    devices: tuple[str, ...] | None = None

    @property
    def cpu_quota_us(self) -> int:
        return max(1000, self.cpu_millis * CPU_PERIOD_US // 1000)


class Cgroup(Protocol):
    name: str

    @property
    def procs_files(self) -> tuple[Path, ...]:
        """The cgroup.procs files a process writes its pid into to join (one per v1 hierarchy)."""
        ...

    def pids(self) -> set[int]: ...

    def oom_kills(self) -> int:
        """How many processes the kernel OOM killer killed in this cgroup."""
        ...

    def nr_throttled(self) -> int:
        """How many CFS periods this cgroup was throttled in (its CPU quota held)."""
        ...

    def memory_current(self) -> int: ...

    def kill(self) -> set[int]:
        """SIGKILL every process in the cgroup (repeating until it is empty or a few rounds pass);
        returns every pid it killed, so the caller can reap those re-parented to it."""
        ...

    def remove(self) -> None: ...


class CgroupDriver(Protocol):
    version: int

    def create(self, name: str, limits: Limits) -> Cgroup: ...

    def controllers(self) -> list[str]: ...

    def parents(self) -> list[Path]:
        """The `fleetplane` parent directories (one per v1 hierarchy, one for v2)."""
        ...


_OWNED = re.compile(r"\.(\d+)\.(\d+)$")  # <replica>.<supervisor pid>.<start number>


def group_name(replica_id: str, start: int) -> str:
    """A cgroup name that says which supervisor process made it, so leftovers can be told apart."""
    return f"{replica_id}.{os.getpid()}.{start}"


def sweep(driver: CgroupDriver) -> list[str]:
    """Remove empty cgroups left by supervisors that are gone (a crash leaves its cgroups behind);
    another live supervisor's cgroups are never touched."""
    removed: list[str] = []
    for parent in driver.parents():
        if not parent.is_dir():
            continue
        for group in parent.iterdir():
            match = _OWNED.search(group.name)
            if not group.is_dir() or match is None or _alive(int(match.group(1))):
                continue
            try:
                if not (group / "cgroup.procs").read_text().split():
                    group.rmdir()
                    removed.append(group.name)
            except OSError:
                continue  # in use after all, or not ours to remove
    return sorted(set(removed))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def join(procs_files: tuple[Path, ...]) -> None:
    """Move the calling process into a cgroup (used in the child between fork and exec)."""
    pid = str(os.getpid()).encode()
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)


def why(exc: OSError) -> str:
    """An OSError as the reason a cgroup operation failed, with the way out when it is permissions."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{exc.strerror} (the local runtime creates cgroups: run fleetplane as root)"
    return str(exc.strerror)


def read_int(path: Path) -> int:
    text = path.read_text().strip()
    return -1 if text == "max" else int(text)


def write_checked(path: Path, value: str, expect: str | None = None) -> None:
    """Write a control file and read it back; raise CgroupError when the kernel kept something else."""
    try:
        path.write_text(value)
        got = path.read_text().strip()
    except OSError as exc:
        raise CgroupError(f"cannot set {path}: {why(exc)}") from exc
    if got != (expect if expect is not None else value):
        raise CgroupError(f"{path} reads back {got!r} after writing {value!r}")


def detect(root: Path = DEFAULT_ROOT) -> CgroupDriver:
    """The cgroup driver for this host: v2 when `root` is a unified hierarchy with the controllers we
    need, else v1 (hybrid hosts mount v1 controllers beside an empty unified tree)."""
    from fleetplane.runtime.cgroups.v1 import CgroupV1
    from fleetplane.runtime.cgroups.v2 import CgroupV2

    if (root / "cgroup.controllers").exists():
        return CgroupV2(root)
    if (root / "memory").is_dir() and (root / "pids").is_dir() and (root / "cpu").is_dir():
        return CgroupV1(root)
    raise CgroupError(f"no usable cgroup hierarchy under {root} (need memory, cpu and pids controllers)")
