"""Trust → isolation tier: the weakest tier the trust level allows that works on this host.

`untrusted` needs a microVM. Where none works it is refused, unless the agent's policy explicitly allows
degrading to gVisor — and then the degradation is logged loudly (a warning every time it is chosen).
"""

from __future__ import annotations

import functools
import logging

from fleetplane.runtime.replica import Tier, TierRefused
from fleetplane.runtime.sandbox import Availability, sandbox_for

log = logging.getLogger("fleetplane.runtime.sandbox")

TIER_ORDER: tuple[Tier, ...] = ("process", "bwrap", "gvisor", "microvm")
MINIMUM_TIER: dict[str, Tier] = {"trusted": "process", "internal": "bwrap", "untrusted": "microvm"}


@functools.cache
def host_tiers() -> dict[Tier, Availability]:
    """What works on this host (probed once per process: each probe really starts a sandbox)."""
    return {tier: sandbox_for(tier).availability() for tier in TIER_ORDER}


def resolve_tier(
    trust: str,
    requested: Tier | None = None,
    *,
    allow_degrade: bool = False,
    available: dict[Tier, Availability] | None = None,
    agent: str = "",
) -> Tier:
    """The tier to run an agent in, or TierRefused saying why and what would make it run."""
    tiers = available if available is not None else host_tiers()
    if trust not in MINIMUM_TIER:
        raise TierRefused(f"unknown trust {trust!r}; expected one of {', '.join(MINIMUM_TIER)}")
    floor = MINIMUM_TIER[trust]
    if requested is not None and TIER_ORDER.index(requested) < TIER_ORDER.index(floor):
        raise TierRefused(f"trust {trust!r} needs isolation {floor!r} or stronger, not {requested!r}")
    candidates = [requested] if requested else list(TIER_ORDER[TIER_ORDER.index(floor) :])
    for tier in candidates:
        if tiers[tier].ok:
            return tier
    wanted = candidates[0]
    why = tiers[wanted].reason
    if wanted == "microvm" and allow_degrade:
        if tiers["gvisor"].ok:
            log.warning(
                "DEGRADED ISOLATION: agent %r is %s and needs a microVM (%s); running it under gVisor "
                "because allow_degrade_to_gvisor is set",
                agent,
                trust,
                why,
            )
            return "gvisor"
        raise TierRefused(
            f"agent {agent!r} ({trust}) needs a microVM ({why}); degrading to gVisor was allowed but "
            f"gVisor does not work here either ({tiers['gvisor'].reason})"
        )
    hint = " (or set allow_degrade_to_gvisor: true to run it under gVisor)" if wanted == "microvm" else ""
    raise TierRefused(
        f"agent {agent!r} ({trust}) needs isolation {wanted!r}, which is not available here: {why}{hint}"
    )
