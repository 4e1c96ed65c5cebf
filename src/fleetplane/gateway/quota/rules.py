"""Quota rules: every `Quota` manifest, and every `quota:` field of a tenant kind or model, as one shape."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from fleetplane.manifests.kinds import Customer, Manifest, Model, Organization, Quota, Team, User, VirtualKey
from fleetplane.manifests.limits import QuotaLimits, Schedule

TARGET_FIELDS = ("organization", "team", "user", "customer", "agent", "key", "model", "deployment")


@dataclass(frozen=True)
class WaitSetting:
    """How long a key's requests may wait for quota, and in which line."""

    max: float
    priority: str


@dataclass(frozen=True)
class QuotaRule:
    name: str  # "Quota/x", or "Team/support" for a tenant's own quota field
    target: tuple[tuple[str, str], ...]  # (field, value or "*"), in TARGET_FIELDS order
    limits: QuotaLimits
    schedule: Schedule | None
    reservation: Literal["strict", "adaptive"]
    percentile: float
    fail_mode: Literal["closed", "open"]
    time_zone: str  # calendar windows turn over at midnight here

    @property
    def per_attempt(self) -> bool:
        """Counted per deployment, so a denial lets the chain try the next one."""
        return any(field == "deployment" for field, _ in self.target)


def rules_from_manifests(manifests: Iterable[Manifest]) -> list[QuotaRule]:
    docs = list(manifests)
    zones = {m.name: m.spec.time_zone for m in docs if isinstance(m, Organization)}
    teams = {m.name: m.spec.organization for m in docs if isinstance(m, Team)}
    default_zone = next(iter(zones.values()), "UTC") if len(set(zones.values())) == 1 else "UTC"
    rules: list[QuotaRule] = []
    for m in docs:
        if isinstance(m, Quota):
            spec = m.spec
            target = tuple((f, v) for f in TARGET_FIELDS if (v := spec.target.fields().get(f)) is not None)
            zone = spec.time_zone or _zone_of(target, zones, teams) or default_zone
            rules.append(
                QuotaRule(
                    m.ref,
                    target,
                    spec.limits,
                    spec.schedule,
                    spec.reservation,
                    spec.adaptive_percentile,
                    spec.fail_mode,
                    zone,
                )
            )
            continue
        own = _own_quota(m)
        if own is not None:
            field, limits = own
            target = ((field, m.name),)
            zone = _zone_of(target, zones, teams) or default_zone
            rules.append(QuotaRule(m.ref, target, limits, None, "strict", 0.95, "closed", zone))
    return rules


def _own_quota(m: Manifest) -> tuple[str, QuotaLimits] | None:
    field = {Organization: "organization", Team: "team", User: "user", Customer: "customer",
             VirtualKey: "key", Model: "model"}.get(type(m))  # fmt: skip
    quota = getattr(getattr(m, "spec", None), "quota", None)
    if field is None or quota is None:
        return None
    return field, quota


def _zone_of(target: tuple[tuple[str, str], ...], zones: dict[str, str], teams: dict[str, str]) -> str | None:
    fields = dict(target)
    org = fields.get("organization")
    if org in zones:
        return zones[org]
    team = fields.get("team")
    if team in teams and teams[team] in zones:
        return zones[teams[team]]
    return None
