"""Trust → tier: untrusted refused without a working microVM, degraded to gVisor only when allowed
(and then loudly); and the microVM probe on this host."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from fleetplane.runtime.replica import SandboxError, TierRefused
from fleetplane.runtime.sandbox import Availability
from fleetplane.runtime.sandbox.microvm import probe
from fleetplane.runtime.sandbox.policy import resolve_tier


def host(**ok: bool) -> dict[str, Availability]:
    tiers = ("process", "bwrap", "gvisor", "microvm")
    return {
        t: Availability(t, ok.get(t, True), f"{t} {'works' if ok.get(t, True) else 'is missing'}")
        for t in tiers
    }  # type: ignore[arg-type]


NO_MICROVM = host(microvm=False)


def test_each_trust_level_gets_the_weakest_tier_it_allows() -> None:
    assert resolve_tier("trusted", available=NO_MICROVM) == "process"
    assert resolve_tier("internal", available=NO_MICROVM) == "bwrap"
    assert resolve_tier("internal", "gvisor", available=NO_MICROVM) == "gvisor"
    assert resolve_tier("untrusted", available=host()) == "microvm"


def test_a_missing_tier_moves_up_to_the_next_that_works() -> None:
    assert resolve_tier("internal", available=host(bwrap=False, microvm=False)) == "gvisor"


def test_untrusted_without_a_microvm_is_refused_with_the_way_out() -> None:
    with pytest.raises(TierRefused) as refused:
        resolve_tier("untrusted", available=NO_MICROVM, agent="scraper")
    assert str(refused.value) == (
        "agent 'scraper' (untrusted) needs isolation 'microvm', which is not available here: microvm is "
        "missing (or set allow_degrade_to_gvisor: true to run it under gVisor)"
    )


def test_degrading_to_gvisor_only_when_allowed_and_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fleetplane.runtime.sandbox"):
        tier = resolve_tier("untrusted", available=NO_MICROVM, allow_degrade=True, agent="scraper")
    assert tier == "gvisor"
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "DEGRADED ISOLATION: agent 'scraper' is untrusted and needs a microVM"
    )


def test_degrading_needs_a_working_gvisor() -> None:
    with pytest.raises(TierRefused, match="gVisor does not work here either"):
        resolve_tier("untrusted", available=host(microvm=False, gvisor=False), allow_degrade=True)


def test_a_requested_tier_below_the_trust_floor_is_refused() -> None:
    with pytest.raises(
        TierRefused, match="trust 'internal' needs isolation 'bwrap' or stronger, not 'process'"
    ):
        resolve_tier("internal", "process", available=host())


def test_the_microvm_probe_says_why_not_on_this_host() -> None:
    found = probe()
    # these hosts have /dev/kvm without CPU virtualisation, and no launcher either way
    assert found.ok is False
    assert found.reason


@pytest.mark.anyio
async def test_the_supervisor_refuses_a_microvm_replica(supervisor: Any, make_spec: Any) -> None:
    with pytest.raises(SandboxError, match="isolation 'microvm' is not available here: ") as refused:
        await supervisor.start(make_spec(tier="microvm"))
    assert str(refused.value).endswith(probe().reason)
    assert supervisor.replicas == {}


BOOTED = "a KVM guest booted its kernel, but this fleetplane version has no microVM launcher"
HUNG = "the KVM guest printed nothing in 1s (virtualisation not usable)"
NO_KVM = "qemu: could not access KVM kernel module"


@pytest.mark.parametrize(
    ("guest", "expected"),
    [
        ("echo 'Linux version 6.1.0 (guest)'", BOOTED),
        ("sleep 5", HUNG),
        (f"echo '{NO_KVM}' >&2; exit 1", f"the KVM guest did not boot: {NO_KVM}"),
    ],
)
def test_the_microvm_probe_boots_a_guest_rather_than_trusting_dev_kvm(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, guest: str, expected: str
) -> None:
    from fleetplane.runtime.sandbox import microvm

    qemu = tmp_path / "qemu-system-x86_64"
    qemu.write_text(f"#!/bin/sh\n{guest}\n")
    qemu.chmod(0o755)
    monkeypatch.setattr(microvm.os.path, "exists", lambda path: path == "/dev/kvm")
    monkeypatch.setattr(microvm, "_cpu_virtualisation", lambda: True)
    monkeypatch.setattr(microvm.shutil, "which", lambda name: str(qemu) if name == qemu.name else None)
    monkeypatch.setattr(microvm.glob, "glob", lambda pattern: ["/boot/vmlinuz-6.1.0"])
    monkeypatch.setattr(microvm, "BOOT_TIMEOUT", 1.0)
    found = microvm.probe()
    assert (found.ok, found.reason) == (False, expected)
