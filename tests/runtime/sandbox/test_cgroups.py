"""cgroup drivers: detection of v1/v2, the v2 layout against a stand-in hierarchy (these hosts are v1),
a read-back mismatch is an error, and a cgroup is never reused."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from fleetplane.runtime.cgroups import CgroupError, Limits, detect, write_checked
from fleetplane.runtime.cgroups.v2 import CgroupV2

LIMITS = Limits(memory_bytes=64 * 2**20, cpu_millis=1500, pids=32)


def fake_v2(root: Path) -> Path:
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


class FakeSubtree(CgroupV2):
    """A stand-in v2 tree: mkdir does not populate control files as the kernel does, so add them."""

    def create(self, name: str, limits: Limits):  # type: ignore[no-untyped-def]
        parent = self.root / "fleetplane"
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.controllers").write_text("cpu memory pids\n")
        (parent / "cgroup.subtree_control").touch()
        return super().create(name, limits)


def test_detect_picks_v2_on_a_unified_tree_and_v1_on_split_controllers(tmp_path: Path) -> None:
    assert detect(fake_v2(tmp_path / "v2")).version == 2
    v1 = tmp_path / "v1"
    for controller in ("memory", "cpu", "pids"):
        (v1 / controller).mkdir(parents=True)
    assert detect(v1).version == 1
    with pytest.raises(CgroupError, match="no usable cgroup hierarchy"):
        detect(tmp_path / "nothing")


def test_v2_writes_the_limits_in_its_own_files(tmp_path: Path) -> None:
    driver = FakeSubtree(fake_v2(tmp_path / "cg"))
    group = driver.create("billing-0-abc", LIMITS)
    base = tmp_path / "cg/fleetplane/billing-0-abc"
    assert (base / "memory.max").read_text() == str(64 * 2**20)
    assert (base / "cpu.max").read_text() == "150000 100000"
    assert (base / "pids.max").read_text() == "32"
    assert (tmp_path / "cg/cgroup.subtree_control").read_text() == "+pids"  # the last one enabled
    assert group.procs_files == (base / "cgroup.procs",)
    (base / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    (base / "cpu.stat").write_text("usage_usec 10\nnr_periods 5\nnr_throttled 3\nthrottled_usec 9\n")
    assert group.oom_kills() == 1
    assert group.nr_throttled() == 3
    with pytest.raises(CgroupError, match="exists already: a fresh cgroup per start"):
        driver.create("billing-0-abc", LIMITS)


def test_v2_without_a_needed_controller_is_an_error(tmp_path: Path) -> None:
    root = fake_v2(tmp_path / "cg")
    (root / "cgroup.controllers").write_text("cpu io\n")
    with pytest.raises(CgroupError, match="lacks controllers: memory, pids"):
        CgroupV2(root).create("x", LIMITS)


def test_a_limit_that_reads_back_different_is_an_error(tmp_path: Path) -> None:
    class Rounding(type(tmp_path)):  # type: ignore[misc]
        def read_text(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return "4096"

    with pytest.raises(CgroupError, match="reads back '4096' after writing '4097'"):
        write_checked(Rounding(tmp_path / "memory.max"), "4097")


def test_cpu_quota_has_a_floor_of_one_millisecond() -> None:
    assert Limits(memory_bytes=1, cpu_millis=1, pids=1).cpu_quota_us == 1000
    assert Limits(memory_bytes=1, cpu_millis=2000, pids=1).cpu_quota_us == 200_000


def test_v2_in_a_container_moves_its_own_processes_out_of_the_namespace_root(tmp_path: Path) -> None:
    root = fake_v2(tmp_path / "cg")
    (root / "cgroup.procs").write_text("1\n7\n")

    class NamespaceRoot(type(tmp_path)):  # type: ignore[misc]
        """The kernel's rule: no controllers for children while the cgroup itself holds processes."""

        def write_text(self, data, *args, **kwargs):  # type: ignore[no-untyped-def]
            busy = bool((root / "cgroup.procs").read_text().split())
            if self.name == "cgroup.subtree_control" and self.parent == root and busy:
                raise OSError(errno.EBUSY, "Device or resource busy")
            if self.name == "cgroup.procs" and self.parent.name == "fleetplane-host":
                left = [p for p in (root / "cgroup.procs").read_text().split() if p != data]
                (root / "cgroup.procs").write_text("\n".join(left))
            return super().write_text(data, *args, **kwargs)

    driver = FakeSubtree(NamespaceRoot(root))
    driver.create("agent-0-abc", LIMITS)
    assert (root / "cgroup.procs").read_text() == ""
    assert (root / "fleetplane-host" / "cgroup.procs").read_text() == "7"  # the last one moved
    assert (root / "fleetplane/agent-0-abc/pids.max").read_text() == "32"


def test_a_permission_error_says_how_to_fix_it(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    for controller in ("memory", "cpu", "pids"):
        (locked / controller).mkdir()
    from fleetplane.runtime.cgroups.v1 import CgroupV1

    class Refusing(type(tmp_path)):  # type: ignore[misc]
        def mkdir(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(CgroupError) as refused:
        CgroupV1(Refusing(locked)).create("agent-0", LIMITS)
    assert str(refused.value) == (
        f"cannot create memory cgroup {locked}/memory/fleetplane/agent-0: Permission denied "
        "(the local runtime creates cgroups: run fleetplane as root)"
    )


@pytest.mark.usefixtures("cgroups_ok")
def test_cgroups_left_by_a_crashed_supervisor_are_swept(tmp_path: Path) -> None:
    from fleetplane.runtime.cgroups import sweep
    from fleetplane.runtime.supervisor import Supervisor

    driver = detect()
    ghost, mine = "ghost-0.999999999.1", f"live-0.{os.getpid()}.1"  # pid 999999999 is above pid_max
    for parent in driver.parents():
        for name in (ghost, mine):
            (parent / name).mkdir(parents=True)
    try:
        supervisor = Supervisor(tmp_path / "runtime", cgroups=driver)
        assert ghost in supervisor.swept and mine not in supervisor.swept
        assert all(not (p / ghost).exists() and (p / mine).exists() for p in driver.parents())
        assert ghost not in sweep(driver) and mine not in sweep(driver)  # swept once; the live one stays
    finally:
        for parent in driver.parents():
            for name in (ghost, mine):
                if (parent / name).exists():
                    (parent / name).rmdir()
