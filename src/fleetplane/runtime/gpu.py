"""The GPU allocator: which of the host's declared devices each replica gets.

A request is whole devices (`count`), one MIG instance of a profile (`mig`), or a time-sliced share of
one device (`share`, trusted agents only: time-slicing gives no memory isolation). The host's devices
are declared, not discovered (`FLEETPLANE_GPUS`, a JSON list such as
`[{"index": "0"}, {"index": "1", "mig": {"1g.5gb": 7}}]`), so the allocator is the same code with or
without hardware. What a replica gets is enforced twice: `CUDA_VISIBLE_DEVICES` names only its devices,
and its device cgroup allows only their character devices (`device_rules`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import orjson

from fleetplane.manifests.agent import Gpu

NVIDIA_MAJOR = 195  # /dev/nvidiaN is character device 195:N; 195:255 is /dev/nvidiactl
UVM_DEVICE = "c 511:* rwm"  # /dev/nvidia-uvm's major differs per host; the driver's usual one


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


def device_rules(allocation: Allocation) -> list[str]:
    """Device cgroup entries that let a replica open its GPUs (and the driver's control devices) only."""
    rules = [f"c {NVIDIA_MAJOR}:{index} rwm" for index in allocation.physical]
    if rules:
        rules += [f"c {NVIDIA_MAJOR}:255 rwm", UVM_DEVICE]
    return rules


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
