"""Breaker rules from `Breaker` manifests, and the engine specs they become for one subject."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fleetplane.manifests.breaker import BreakerSpec as BreakerManifestSpec
from fleetplane.manifests.kinds import Breaker, Manifest
from fleetplane.state.breaker import BreakerSpec, Trigger

COST = "cost-velocity"
REPEATS = "repeats"
CONTEXT_SIZE = "context-size"
CONTEXT_GROWTH = "context-growth"
ERRORS = "error-rate"


@dataclass(frozen=True)
class BreakerRule:
    name: str  # "Breaker/loop-guard"
    level: str  # agent | key | team | deployment
    value: str  # a name, or "*" for each
    spec: BreakerManifestSpec

    @property
    def agent_side(self) -> bool:
        return self.level != "deployment"

    def subject(self, value: str | None) -> str | None:
        if value is None or (self.value != "*" and value != self.value):
            return None
        return value

    def engine_spec(self, subject: str) -> BreakerSpec:
        s = self.spec
        triggers: list[Trigger] = []
        if s.cost_velocity is not None:
            triggers.append(Trigger(COST, window=60.0, threshold=s.cost_velocity.usd_per_minute, kind="sum"))
        if s.repeats is not None:
            triggers.append(Trigger(REPEATS, window=s.repeats.window, threshold=s.repeats.count, kind="max"))
        if s.context_growth is not None:
            if s.context_growth.max_input_tokens is not None:
                triggers.append(Trigger(CONTEXT_SIZE, 60.0, s.context_growth.max_input_tokens, "max"))
            if s.context_growth.max_growth_per_turn is not None:
                triggers.append(Trigger(CONTEXT_GROWTH, 60.0, s.context_growth.max_growth_per_turn, "max"))
        if s.error_rate is not None:
            e = s.error_rate
            triggers.append(Trigger(ERRORS, e.window, e.threshold, "ratio", min_samples=e.min_requests))
        return BreakerSpec(
            key=f"{self.name}/{self.level}:{subject}",
            triggers=tuple(triggers),
            open_for=s.open_for,
            max_open_for=max(s.max_open_for, s.open_for),
            half_open_probes=s.half_open.probes,
            close_after=s.half_open.close_after,
        )


def breaker_rules(manifests: Iterable[Manifest]) -> list[BreakerRule]:
    return [
        BreakerRule(m.ref, m.spec.target.level, m.spec.target.value, m.spec)
        for m in manifests
        if isinstance(m, Breaker)
    ]
