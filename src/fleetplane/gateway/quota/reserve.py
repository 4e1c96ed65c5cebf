"""How much to reserve before an upstream call: the input as counted, an output bound, and their price.

strict: the output bound is the request's own maximum (max_tokens / max_completion_tokens), or the
model group's maximum when absent — so a limit is never exceeded.
adaptive: a learned percentile of this model group's and agent's past outputs, capped by the request's
maximum — fewer agents locked out by worst-case reservations, at a bounded overshoot (docs/quotas.md).
"""

from __future__ import annotations

from typing import Literal

from fleetplane.gateway.config import DeploymentRuntime
from fleetplane.gateway.context import RequestContext
from fleetplane.gateway.quota.adaptive import OutputStats
from fleetplane.gateway.usage import counted_input
from fleetplane.state.quota.model import Charge
from fleetplane.telemetry.cost import TokenUsage, cost_usd


def requested_output(ctx: RequestContext) -> int:
    """The most output tokens the request can produce."""
    if ctx.operation == "embeddings":
        return 0
    body = ctx.body
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    cap = asked if isinstance(asked, int) and asked > 0 else ctx.group.max_output_tokens
    choices = body.get("n") if ctx.operation == "chat" else 1
    return cap * (choices if isinstance(choices, int) and choices > 1 else 1)


def output_bound(
    ctx: RequestContext, policy: Literal["strict", "adaptive"], percentile: float, stats: OutputStats
) -> int:
    cap = requested_output(ctx)
    if policy == "strict" or cap == 0:
        return cap
    learned = stats.percentile(ctx.group.name, ctx.tenant.agent, percentile)
    return cap if learned is None else min(cap, max(1, learned))


def dollars(usage: TokenUsage, deployment: DeploymentRuntime) -> float:
    return float(
        cost_usd(
            usage,
            model=deployment.model,
            rates=deployment.rates,
            provider_id=deployment.provider.price_provider,
        )
    )


def charge_of(usage: TokenUsage, deployment: DeploymentRuntime) -> Charge:
    return Charge(
        tokens=usage.input_tokens + usage.output_tokens,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        requests=1,
        dollars=dollars(usage, deployment),
    )


def input_tokens(ctx: RequestContext) -> int:
    """Counted once per request and kept: every attempt and every stream progress uses it."""
    if ctx.input_estimate is None:
        ctx.input_estimate = counted_input(ctx.operation, ctx.body)
    return ctx.input_estimate
