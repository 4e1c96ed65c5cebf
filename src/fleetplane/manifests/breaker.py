"""`Breaker`: L2 circuit breakers made for agents — cost velocity, loops, context growth — and for
deployments (upstream error rate)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fleetplane.manifests.document import Manifest, kind
from fleetplane.manifests.fields import Duration, FieldError, Strict


class BreakerTarget(Strict):
    """Whose requests are watched; "*" means each one separately (one breaker per agent, say)."""

    agent: str | None = None
    key: str | None = None
    team: str | None = None
    deployment: str | None = None  # provider/upstream-model

    @model_validator(mode="after")
    def _one(self) -> BreakerTarget:
        named = [n for n in ("agent", "key", "team", "deployment") if getattr(self, n) is not None]
        if len(named) != 1:
            raise FieldError(
                "a breaker watches exactly one thing", expected="one of agent, key, team, deployment"
            )
        return self

    @property
    def level(self) -> str:
        return next(n for n in ("agent", "key", "team", "deployment") if getattr(self, n) is not None)

    @property
    def value(self) -> str:
        return str(getattr(self, self.level))


class CostVelocity(Strict):
    usd_per_minute: float = Field(gt=0)


class Repeats(Strict):
    """The same request (model + messages + tools, normalised) more than `count` times within `window`."""

    count: int = Field(ge=2)
    window: Duration = 60.0


class ContextGrowth(Strict):
    """A conversation's input past a size, or growing faster than a rate per turn."""

    max_input_tokens: int | None = Field(default=None, gt=0)
    max_growth_per_turn: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> ContextGrowth:
        if self.max_input_tokens is None and self.max_growth_per_turn is None:
            raise FieldError("no limit is set", expected="maxInputTokens, maxGrowthPerTurn or both")
        return self


class ErrorRate(Strict):
    threshold: float = Field(gt=0, le=1)  # share of failed upstream calls
    min_requests: int = Field(default=10, ge=1)
    window: Duration = 60.0


class HalfOpen(Strict):
    probes: int = Field(default=1, ge=1)  # requests let through at once to test recovery
    close_after: int = Field(default=2, ge=1)  # good probes in a row that close the breaker


class BreakerSpec(Strict):
    target: BreakerTarget
    cost_velocity: CostVelocity | None = None
    repeats: Repeats | None = None
    context_growth: ContextGrowth | None = None
    error_rate: ErrorRate | None = None
    open_for: Duration = 60.0
    max_open_for: Duration = 1800.0  # re-trips double open_for up to this
    half_open: HalfOpen = Field(default_factory=HalfOpen)

    @model_validator(mode="after")
    def _triggers_fit_target(self) -> BreakerSpec:
        agent_side = [
            n for n in ("cost_velocity", "repeats", "context_growth") if getattr(self, n) is not None
        ]
        if not agent_side and self.error_rate is None:
            raise FieldError(
                "a breaker without a trigger never trips",
                expected="one or more of costVelocity, repeats, contextGrowth, errorRate",
            )
        if self.target.level == "deployment" and agent_side:
            raise FieldError(
                "a deployment breaker trips on errorRate only",
                at=("target", "deployment"),
                expected="an agent, key or team target",
            )
        if self.target.level != "deployment" and self.error_rate is not None:
            raise FieldError(
                "errorRate watches a deployment",
                at=("errorRate",),
                expected="target: {deployment: provider/model}",
            )
        return self


@kind
class Breaker(Manifest):
    KIND = "Breaker"
    kind: Literal["Breaker"]
    spec: BreakerSpec
