"""What `fleetplane get quotas` shows: per rule and subject, each limit in force, used, reserved, reset."""

from __future__ import annotations

from typing import Any

from fleetplane.gateway.quota.policy import QuotaPolicy
from fleetplane.gateway.quota.rules import QuotaRule
from fleetplane.gateway.quota.schedule import limits_in_force
from fleetplane.gateway.quota.scopes import Scope, limits_for
from fleetplane.state.quota.store import QuotaStoreUnavailable


def _subjects(rule: QuotaRule, policy: QuotaPolicy) -> set[str]:
    seen = set(policy.seen.get(rule.name, ()))
    if all(value != "*" for _, value in rule.target):
        seen.add(",".join(f"{field}={value}" for field, value in rule.target))
    return seen


async def quota_report(rules: list[QuotaRule], policy: QuotaPolicy) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    now = policy.clock.now()
    for rule in rules:
        in_force, index = limits_in_force(rule.limits, rule.schedule, now)
        schedule = "base limits" if index is None else f"schedule rule {index + 1}"
        for subject in sorted(_subjects(rule, policy)):
            scope = Scope(rule, subject, limits_for(rule, subject, in_force), index)
            try:
                usage = {u.key: u for u in await policy.store.usage(scope.limits)}
                source = "shared"
            except QuotaStoreUnavailable:
                usage, source = {}, "unavailable"
            rows.append(
                {
                    "rule": rule.name,
                    "subject": subject,
                    "schedule": schedule,
                    "reservation": rule.reservation,
                    "failMode": rule.fail_mode,
                    "store": source,
                    "limits": [
                        {
                            "name": limit.name,
                            "limit": limit.limit,
                            "used": usage[limit.key].used if limit.key in usage else None,
                            "reserved": usage[limit.key].reserved if limit.key in usage else None,
                            "resetAfter": usage[limit.key].reset_after if limit.key in usage else None,
                        }
                        for limit in scope.limits
                    ],
                }
            )
    return rows
