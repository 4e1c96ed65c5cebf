"""The `microvm` tier: a capability probe that boots a guest for real.

Opening /dev/kvm proves nothing (on these hosts it opens, but the CPU exposes no virtualisation and
guests hang), so the probe checks the CPU flags and a VMM binary and then boots the host's kernel in
QEMU with KVM until the guest kernel prints its banner. fleetplane has no microVM launcher in this
version: even where the probe boots a guest the tier reports that, and `start` refuses — the policy
then refuses untrusted agents or, when allowed, degrades them to gVisor.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

from fleetplane.runtime.replica import ReplicaSpec, SandboxError, Tier
from fleetplane.runtime.sandbox import Availability, LaunchPlan, ReplicaPaths

VMMS = ("firecracker", "cloud-hypervisor", "qemu-system-x86_64")
BOOT_TIMEOUT = 10.0


def _cpu_virtualisation() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " vmx" in flags or " svm" in flags


def _boot_guest(qemu: str) -> tuple[bool, str]:
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    if not kernels:
        return False, "no guest kernel to boot (/boot/vmlinuz-*)"
    argv = [qemu, "-enable-kvm", "-m", "128", "-nographic", "-no-reboot", "-kernel", kernels[-1]]
    argv += ["-append", "console=ttyS0 panic=-1"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=BOOT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace")
        if "Linux version" in out:
            return True, "a KVM guest booted its kernel"
        return False, f"the KVM guest printed nothing in {BOOT_TIMEOUT:.0f}s (virtualisation not usable)"
    out = done.stdout.decode(errors="replace")
    if "Linux version" in out:
        return True, "a KVM guest booted its kernel"
    return False, f"the KVM guest did not boot: {done.stderr.decode(errors='replace').strip()[-160:]}"


def probe() -> Availability:
    if not os.path.exists("/dev/kvm"):
        return Availability("microvm", False, "no /dev/kvm")
    if not _cpu_virtualisation():
        return Availability(
            "microvm", False, "/dev/kvm exists but the CPU exposes no virtualisation (no vmx/svm flag)"
        )
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        found = [v for v in VMMS if shutil.which(v)]
        if not found:
            return Availability("microvm", False, f"no VMM installed ({', '.join(VMMS)})")
        return Availability("microvm", False, f"{found[0]} found, but the boot probe uses qemu-system-x86_64")
    booted, why = _boot_guest(qemu)
    if not booted:
        return Availability("microvm", False, why)
    return Availability("microvm", False, f"{why}, but this fleetplane version has no microVM launcher")


class MicrovmSandbox:
    tier: Tier = "microvm"

    def availability(self) -> Availability:
        return probe()

    def plan(self, spec: ReplicaSpec, paths: ReplicaPaths) -> LaunchPlan:
        raise SandboxError(f"isolation 'microvm' is not available here: {probe().reason}")
