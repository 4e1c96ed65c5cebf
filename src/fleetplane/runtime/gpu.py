"""The GPU allocator: which of the host's declared devices each replica gets.

A request is whole devices (`count`), one MIG instance of a profile (`mig`), or a time-sliced share of
one device (`share`, trusted agents only: time-slicing gives no memory isolation). The host's devices
are declared, not discovered (`FLEETPLANE_GPUS`, a JSON list such as
`[{"index": "0"}, {"index": "1", "mig": {"1g.5gb": 7}}]`), so the allocator is the same code with or
without hardware. What a replica gets is enforced three ways: `CUDA_VISIBLE_DEVICES` names only its
devices (indices, or MIG instance ids such as `MIG-1/1g.5gb/0`), a sandbox's fresh /dev has only the
nodes of the physical devices behind them (`gpu_nodes`), and on cgroup v1 its device cgroup denies every
device but those nodes and the ordinary ones a process needs (`cgroup_rules`). The nodes are looked up
under `FLEETPLANE_GPU_DEV_DIR` (default /dev), and each rule is the node's real major:minor.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from fleetplane.manifests.agent import Gpu


class GpuUnavailable(Exception):
    """The request cannot be met from the declared devices (what is free is in the message)."""


@dataclass(frozen=True)
class Device:
    index: str
    mig: dict[str, int] = field(default_factory=dict)  # MIG profile → instances configured


@dataclass(frozen=True)
class Allocation:
    owner: str
    devices: tuple[str, ...]  # what CUDA_VISIBLE_DEVICES lists: indices, or MIG instance ids
    physical: tuple[str, ...]  # the device indices behind them (for the device cgroup)
    share: float = 0.0


def parse_devices(text: str | None) -> list[Device]:
    """The declared devices from `FLEETPLANE_GPUS` (none when unset)."""
    if not text:
        return []
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"FLEETPLANE_GPUS is not JSON: {exc}") from None
    if not isinstance(raw, list):
        raise ValueError('FLEETPLANE_GPUS must be a JSON list, e.g. [{"index": "0"}]')
    devices = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or "index" not in entry:
            raise ValueError(f'FLEETPLANE_GPUS[{i}] needs an index, e.g. {{"index": "0"}}')
        mig = entry.get("mig") or {}
        if not isinstance(mig, dict) or not all(isinstance(v, int) and v > 0 for v in mig.values()):
            raise ValueError(f'FLEETPLANE_GPUS[{i}].mig maps a profile to a count, e.g. {{"1g.5gb": 7}}')
        devices.append(Device(str(entry["index"]), {str(k): int(v) for k, v in mig.items()}))
    return devices


DEV_DIR_ENV = "FLEETPLANE_GPU_DEV_DIR"
CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")  # shared by every GPU
# What every replica's /dev holds anyway (bwrap's --dev: null, zero, full, random, urandom, tty, ptmx and
# pts), plus mknod of anything (creating a node opens nothing; opening it is what the rules decide).
BASE_RULES = (
    "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
    "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm",
)  # fmt: skip


@dataclass(frozen=True)
class DeviceNode:
    name: str  # under /dev inside the sandbox, e.g. "nvidia1"
    host: Path  # the node on the host
    rule: str  # its device cgroup entry, e.g. "c 195:1 rwm"


def dev_dir() -> Path:
    return Path(os.environ.get(DEV_DIR_ENV) or "/dev")


def physical_index(device: str) -> str:
    """The GPU index behind what CUDA_VISIBLE_DEVICES lists: "MIG-1/1g.5gb/0" → "1", "3" → "3"."""
    if device.startswith("MIG-"):
        return device[4:].split("/", 1)[0]
    return device


def gpu_nodes(devices: tuple[str, ...], root: Path | None = None) -> list[DeviceNode]:
    """The character devices a replica with `devices` may open: its GPUs' /dev/nvidiaN (one per
    physical GPU, whatever MIG instances it has there) and the driver's shared control nodes; only
    those present on this host (none without a driver)."""
    if not devices:
        return []
    base = root if root is not None else dev_dir()
    names = [f"nvidia{i}" for i in dict.fromkeys(physical_index(d) for d in devices)]
    nodes = []
    for name in [*names, *CONTROL_NODES]:
        try:
            info = (base / name).stat()
        except OSError:
            continue
        if stat.S_ISCHR(info.st_mode):
            rule = f"c {os.major(info.st_rdev)}:{os.minor(info.st_rdev)} rwm"
            nodes.append(DeviceNode(name, base / name, rule))
    return nodes


def cgroup_rules(devices: tuple[str, ...], root: Path | None = None) -> tuple[str, ...]:
    """The device cgroup allow list of a replica with `devices` (after denying all)."""
    return (*BASE_RULES, *(node.rule for node in gpu_nodes(devices, root)))


def device_rules(allocation: Allocation, root: Path | None = None) -> list[str]:
    """Device cgroup entries that let a replica open its GPUs (and the driver's control devices) only."""
    return [node.rule for node in gpu_nodes(allocation.physical, root)]


class GpuAllocator:
    def __init__(self, devices: list[Device]) -> None:
        self.devices = {d.index: d for d in devices}
        self._whole: dict[str, str] = {}  # device → owner
        self._mig: dict[str, str] = {}  # MIG instance id → owner
        self._shares: dict[str, dict[str, float]] = {}  # device → owner → share

    @classmethod
    def from_env(cls) -> GpuAllocator:
        return cls(parse_devices(os.environ.get("FLEETPLANE_GPUS")))

    def _busy(self, index: str) -> bool:
        """Taken whole, or partly (a MIG instance or a share) — then it cannot be given whole."""
        return (
            index in self._whole
            or any(i.split("/")[0] == f"MIG-{index}" for i in self._mig)
            or bool(self._shares.get(index))
        )

    def allocate(self, owner: str, request: Gpu, *, trusted: bool) -> Allocation:
        if request.share is not None:
            return self._share(owner, request.share, trusted=trusted)
        if request.mig is not None:
            return self._mig_instance(owner, request.mig)
        free = [i for i in sorted(self.devices) if not self.devices[i].mig and not self._busy(i)]
        if len(free) < request.count:
            raise GpuUnavailable(
                f"{request.count} whole GPU(s) asked, {len(free)} free of {len(self.devices)} declared"
            )
        chosen = tuple(free[: request.count])
        for index in chosen:
            self._whole[index] = owner
        return Allocation(owner, chosen, chosen)

    def _mig_instance(self, owner: str, profile: str) -> Allocation:
        for index in sorted(self.devices):
            if index in self._whole:
                continue
            for k in range(self.devices[index].mig.get(profile, 0)):
                instance = f"MIG-{index}/{profile}/{k}"
                if instance not in self._mig:
                    self._mig[instance] = owner
                    return Allocation(owner, (instance,), (index,))
        offered = sorted({p for d in self.devices.values() for p in d.mig})
        raise GpuUnavailable(
            f"no free MIG instance of profile {profile!r} (profiles declared: {', '.join(offered) or 'none'})"
        )

    def _share(self, owner: str, share: float, *, trusted: bool) -> Allocation:
        if not trusted:
            raise GpuUnavailable("a time-sliced GPU share gives no memory isolation: trusted agents only")
        for index in sorted(self.devices):
            if index in self._whole or self.devices[index].mig:
                continue
            used = sum(self._shares.get(index, {}).values())
            if used + share <= 1.0 + 1e-9:
                self._shares.setdefault(index, {})[owner] = share
                return Allocation(owner, (index,), (index,), share)
        raise GpuUnavailable(f"no declared GPU has a {share:g} share left")

    def release(self, owner: str) -> None:
        self._whole = {i: o for i, o in self._whole.items() if o != owner}
        self._mig = {i: o for i, o in self._mig.items() if o != owner}
        for shares in self._shares.values():
            shares.pop(owner, None)
