"""The GPU allocator on a declared device list: whole devices, MIG instances, time-sliced shares (trusted
only), release, and what enforces the result (CUDA_VISIBLE_DEVICES and device cgroup entries)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleetplane.manifests.agent import Gpu
from fleetplane.runtime.gpu import (
    BASE_RULES,
    Device,
    GpuAllocator,
    GpuUnavailable,
    cgroup_rules,
    device_rules,
    parse_devices,
    physical_index,
)


def test_whole_devices_are_given_once_and_come_back_on_release() -> None:
    gpus = GpuAllocator([Device("0"), Device("1"), Device("2")])
    first = gpus.allocate("a", Gpu(count=2), trusted=False)
    assert first.devices == ("0", "1")
    with pytest.raises(GpuUnavailable) as full:
        gpus.allocate("b", Gpu(count=2), trusted=False)
    assert str(full.value) == "2 whole GPU(s) asked, 1 free of 3 declared"
    gpus.release("a")
    assert gpus.allocate("b", Gpu(count=3), trusted=False).devices == ("0", "1", "2")


def test_mig_instances_of_a_profile() -> None:
    gpus = GpuAllocator([Device("0"), Device("1", {"1g.5gb": 2})])
    a = gpus.allocate("a", Gpu(mig="1g.5gb"), trusted=False)
    b = gpus.allocate("b", Gpu(mig="1g.5gb"), trusted=False)
    assert (a.devices, a.physical, b.devices) == (("MIG-1/1g.5gb/0",), ("1",), ("MIG-1/1g.5gb/1",))
    with pytest.raises(GpuUnavailable) as none_left:
        gpus.allocate("c", Gpu(mig="1g.5gb"), trusted=False)
    assert str(none_left.value) == "no free MIG instance of profile '1g.5gb' (profiles declared: 1g.5gb)"
    # A MIG-partitioned device is never handed out whole.
    assert gpus.allocate("d", Gpu(count=1), trusted=False).devices == ("0",)


def test_time_sliced_shares_are_for_trusted_agents_and_never_oversubscribed() -> None:
    gpus = GpuAllocator([Device("0")])
    with pytest.raises(GpuUnavailable) as refused:
        gpus.allocate("x", Gpu(share=0.5), trusted=False)
    assert str(refused.value) == "a time-sliced GPU share gives no memory isolation: trusted agents only"
    assert gpus.allocate("a", Gpu(share=0.5), trusted=True).devices == ("0",)
    assert gpus.allocate("b", Gpu(share=0.5), trusted=True).share == 0.5
    with pytest.raises(GpuUnavailable):
        gpus.allocate("c", Gpu(share=0.25), trusted=True)
    with pytest.raises(GpuUnavailable):  # a shared device is not free to give whole
        gpus.allocate("d", Gpu(count=1), trusted=True)


def test_device_cgroup_entries_name_only_the_allocated_devices(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    dev = tmp_path / "dev"  # the host's nodes, with their real numbers (nvidia-uvm's major varies)
    dev.mkdir()
    nodes = {"nvidia0": (195, 0), "nvidia1": (195, 1), "nvidiactl": (195, 255), "nvidia-uvm": (508, 0)}
    for name, (major, minor) in nodes.items():
        os.mknod(dev / name, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
    gpus = GpuAllocator([Device("0"), Device("1", {"1g.5gb": 2})])
    whole = gpus.allocate("a", Gpu(count=1), trusted=False)
    assert device_rules(whole, dev) == ["c 195:0 rwm", "c 195:255 rwm", "c 508:0 rwm"]
    mig = gpus.allocate("b", Gpu(mig="1g.5gb"), trusted=False)
    assert (mig.devices, mig.physical) == (("MIG-1/1g.5gb/0",), ("1",))
    assert device_rules(mig, dev) == ["c 195:1 rwm", "c 195:255 rwm", "c 508:0 rwm"]
    assert cgroup_rules(mig.devices, dev) == (*BASE_RULES, "c 195:1 rwm", "c 195:255 rwm", "c 508:0 rwm")
    assert device_rules(whole, tmp_path / "no-driver") == []  # no nodes: nothing to allow


def test_a_mig_instance_id_names_its_physical_gpu() -> None:
    assert [physical_index(d) for d in ("MIG-1/1g.5gb/0", "MIG-12/3g.20gb/1", "3")] == ["1", "12", "3"]


def test_declared_devices_from_the_environment() -> None:
    assert parse_devices('[{"index": "0"}, {"index": 1, "mig": {"1g.5gb": 7}}]') == [
        Device("0"),
        Device("1", {"1g.5gb": 7}),
    ]
    assert parse_devices(None) == []
    with pytest.raises(ValueError) as bad:
        parse_devices('{"index": 0}')
    assert str(bad.value) == 'FLEETPLANE_GPUS must be a JSON list, e.g. [{"index": "0"}]'
