"""Rate-limit headers and the denial a client sees, naming the scope and limit that decided."""

from __future__ import annotations

import math
from collections.abc import Sequence

from fleetplane.gateway.errors import GatewayError
from fleetplane.state.quota.model import Admitted, Denied, Limit

_TOKEN_METRICS = ("tokens", "input_tokens", "output_tokens")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "0s"
    seconds = max(0.0, seconds)
    if seconds >= 60:
        minutes, rest = divmod(math.ceil(seconds), 60)
        return f"{minutes}m{rest}s"
    return f"{seconds:.3g}s"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _tightest(limits: Sequence[Limit], remaining: dict[str, float], metrics: tuple[str, ...]) -> Limit | None:
    candidates = [lim for lim in limits if lim.metric in metrics and lim.key in remaining]
    return min(candidates, key=lambda lim: remaining[lim.key], default=None)


def admitted_headers(decision: Admitted, limits: Sequence[Limit]) -> dict[str, str]:
    """OpenAI-style x-ratelimit-* headers for the tightest token and request limits of the request."""
    headers: dict[str, str] = {}
    for suffix, metrics in (("tokens", _TOKEN_METRICS), ("requests", ("requests",))):
        tight = _tightest(limits, decision.remaining, metrics)
        if tight is None:
            continue
        headers[f"x-ratelimit-limit-{suffix}"] = _number(tight.limit)
        headers[f"x-ratelimit-remaining-{suffix}"] = _number(max(0.0, decision.remaining[tight.key]))
        headers[f"x-ratelimit-reset-{suffix}"] = _duration(decision.reset_after.get(tight.key))
        if suffix == "tokens":
            headers["x-fleetplane-quota-scope"] = tight.scope
    return headers


def denial(decision: Denied) -> GatewayError:
    limit = decision.limit
    suffix = (
        "tokens"
        if limit.metric in _TOKEN_METRICS
        else "requests"
        if limit.metric == "requests"
        else limit.metric
    )
    wait = (
        f" Retry in {math.ceil(decision.retry_after)}s."
        if decision.retry_after is not None
        else " This request alone is larger than the limit."
    )
    message = (
        f"Quota exceeded for {limit.scope}: the {limit.name} limit is {_number(limit.limit)}; "
        f"{_number(decision.used)} used and {_number(decision.reserved)} reserved in its window, "
        f"this request needs {_number(decision.requested)}.{wait}"
    )
    remaining = max(0.0, limit.limit - decision.used - decision.reserved)
    headers = {
        "x-fleetplane-quota-scope": limit.scope,
        "x-fleetplane-quota-limit": limit.name,
        f"x-ratelimit-limit-{suffix}": _number(limit.limit),
        f"x-ratelimit-remaining-{suffix}": _number(remaining),
        f"x-ratelimit-reset-{suffix}": _duration(decision.retry_after),
    }
    return GatewayError(
        "rate_limit", message, code="quota_exceeded", headers=headers, retry_after=decision.retry_after
    )
