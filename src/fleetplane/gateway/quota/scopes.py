"""Which quota counters one request attempt charges, and their limits in force right now.

A rule applies when every field of its target matches the attempt; "*" matches any value and makes the
value part of the counter's name, so each agent (say) gets its own budget under one rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetplane.gateway.quota.rules import QuotaRule
from fleetplane.gateway.quota.schedule import limits_in_force
from fleetplane.gateway.tenant import Tenant
from fleetplane.manifests.limits import QuotaLimits
from fleetplane.state.quota.model import CalendarWindow, Limit, Metric, SlidingWindow

# limit field → (metric, window, short name used in headers and messages)
_MINUTE = SlidingWindow(seconds=60, slots=12)
_HOUR = SlidingWindow(seconds=3600, slots=60)
_DAY = SlidingWindow(seconds=86400, slots=96)
_FIELDS: tuple[tuple[str, Metric, str], ...] = (
    ("tpm", "tokens", "tpm"),
    ("input_tpm", "input_tokens", "input-tpm"),
    ("output_tpm", "output_tokens", "output-tpm"),
    ("tph", "tokens", "tph"),
    ("tpd", "tokens", "tpd"),
    ("rpm", "requests", "rpm"),
    ("concurrent", "concurrent", "concurrent"),
    ("usd_per_day", "dollars", "usd-per-day"),
    ("usd_per_month", "dollars", "usd-per-month"),
)
_WINDOWS = {
    "tpm": _MINUTE,
    "input_tpm": _MINUTE,
    "output_tpm": _MINUTE,
    "tph": _HOUR,
    "tpd": _DAY,
    "rpm": _MINUTE,
}


@dataclass(frozen=True)
class Attributes:
    """What a rule's target can match on, for one attempt."""

    organization: str
    team: str
    user: str | None
    customer: str | None
    agent: str | None
    key: str
    model: str
    deployment: str | None  # None: request-level matching only

    @classmethod
    def of(cls, tenant: Tenant, model: str, deployment: str | None) -> Attributes:
        return cls(
            tenant.organization, tenant.team, tenant.user, tenant.customer, tenant.agent,
            tenant.key_name, model, deployment,
        )  # fmt: skip


@dataclass(frozen=True)
class Scope:
    """One rule applied to one subject: a set of counters and the limits in force on them."""

    rule: QuotaRule
    subject: str  # e.g. "team=support,model=chat-large"
    limits: tuple[Limit, ...]
    schedule_rule: int | None


def subject_of(rule: QuotaRule, attrs: Attributes) -> str | None:
    parts = []
    for field, wanted in rule.target:
        value = getattr(attrs, field)
        if value is None or (wanted != "*" and value != wanted):
            return None
        parts.append(f"{field}={value}")
    return ",".join(parts)


def limits_for(rule: QuotaRule, subject: str, limits: QuotaLimits) -> tuple[Limit, ...]:
    out = []
    label = f"{rule.name} ({subject})"
    for field, metric, short in _FIELDS:
        value = getattr(limits, field)
        if value is None:
            continue
        window: SlidingWindow | CalendarWindow | None
        if field == "usd_per_day":
            window = CalendarWindow(unit="day", time_zone=rule.time_zone)
        elif field == "usd_per_month":
            window = CalendarWindow(unit="month", time_zone=rule.time_zone)
        else:
            window = _WINDOWS.get(field)
        out.append(
            Limit(
                key=f"quota/{rule.name}/{subject}/{short}",
                scope=label,
                name=short,
                metric=metric,
                limit=float(value),
                window=window,
            )
        )
    return tuple(out)


def scopes_for(rules: list[QuotaRule], attrs: Attributes, wall: float) -> list[Scope]:
    """Every rule that applies to this attempt, with its limits as they stand at `wall`."""
    found = []
    for rule in rules:
        if rule.per_attempt and attrs.deployment is None:
            continue
        subject = subject_of(rule, attrs)
        if subject is None:
            continue
        in_force, index = limits_in_force(rule.limits, rule.schedule, wall)
        found.append(Scope(rule, subject, limits_for(rule, subject, in_force), index))
    return found
