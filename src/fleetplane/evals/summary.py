"""A run's summary: per dimension the mean with a bootstrap interval and the pass rate with a Wilson
interval (a bootstrap one when epochs make per-case pass rates fractional); the suite's weighted score;
the target's cost, latency and tokens; and what scoring cost per item, tier by tier."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fleetplane.evals.gate import Observation
from fleetplane.evals.stats import bootstrap_mean, wilson

SUMMARY_RESAMPLES = 2000


@dataclass
class DimensionInfo:
    name: str
    weight: float
    goal: str
    raw: bool
    threshold: float | None


@dataclass
class ScoringCost:
    """Per scorer tier: items scored, dollars and milliseconds spent scoring them."""

    items: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cost_usd: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    latency_ms: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # by scorer type
    first_error: dict[str, str] = field(default_factory=dict)

    def failed(self, scorer: str, message: str) -> None:
        self.errors[scorer] += 1
        self.first_error.setdefault(scorer, message)

    def add(self, tier: str, cost_usd: float, latency_ms: float) -> None:
        self.items[tier] += 1
        self.cost_usd[tier] += cost_usd
        self.latency_ms[tier] += latency_ms

    def per_item(self) -> dict[str, dict[str, float]]:
        return {
            tier: {
                "items": n,
                "cost_usd_per_item": self.cost_usd[tier] / n,
                "latency_ms_per_item": self.latency_ms[tier] / n,
            }
            for tier, n in sorted(self.items.items())
        }


def _by_case(observations: Iterable[Observation]) -> dict[str, dict[str, list[Observation]]]:
    out: dict[str, dict[str, list[Observation]]] = defaultdict(lambda: defaultdict(list))
    for o in observations:
        out[o.dimension][o.case_id].append(o)
    return out


def summarize_dimension(
    info: DimensionInfo, cases: Mapping[str, list[Observation]], seed: int
) -> dict[str, Any]:
    values = [float(np.mean([o.value for o in obs])) for obs in cases.values()]
    out: dict[str, Any] = {"unit": "raw" if info.raw else "ratio", "goal": info.goal, "cases": len(values)}
    if not values:
        return out
    mean = bootstrap_mean(values, seed=seed, resamples=SUMMARY_RESAMPLES)
    out.update(mean=mean.estimate, mean_ci=[mean.low, mean.high])
    decided = [obs for obs in cases.values() if all(o.passed is not None for o in obs)]
    if decided:
        rates = [float(np.mean([bool(o.passed) for o in obs])) for obs in decided]
        if all(r in (0.0, 1.0) for r in rates):
            interval = wilson(int(sum(rates)), len(rates))
            method = "wilson"
        else:
            interval = bootstrap_mean(rates, seed=seed, resamples=SUMMARY_RESAMPLES)
            method = "bootstrap"
        out.update(pass_rate=interval.estimate, pass_ci=[interval.low, interval.high], pass_method=method)
    return out


def summarize(
    dimensions: Sequence[DimensionInfo],
    observations: Sequence[Observation],
    outputs: Sequence[Mapping[str, Any]],
    scoring: ScoringCost,
    *,
    seed: int,
) -> dict[str, Any]:
    by = _by_case(observations)
    dims = {d.name: summarize_dimension(d, by.get(d.name, {}), seed) for d in dimensions}
    weighted = [(d.weight, dims[d.name]["mean"]) for d in dimensions if not d.raw and "mean" in dims[d.name]]
    total_weight = sum(w for w, _ in weighted)
    latencies = [o["latency_ms"] for o in outputs if o.get("latency_ms") is not None and not o.get("error")]
    costs = [o["cost_usd"] for o in outputs if o.get("cost_usd") is not None]
    return {
        "dimensions": dims,
        "score": sum(w * m for w, m in weighted) / total_weight if total_weight else None,
        "target": {
            "calls": len(outputs),
            "errors": sum(1 for o in outputs if o.get("error")),
            # what went wrong, so a run where every call failed can say why (a wrong target, a down server)
            "first_error": next((str(o["error"]) for o in outputs if o.get("error")), None),
            "cost_usd": sum(costs) if costs else None,
            "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
            "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
            "input_tokens": sum(o.get("input_tokens") or 0 for o in outputs),
            "output_tokens": sum(o.get("output_tokens") or 0 for o in outputs),
        },
        "scoring": scoring.per_item(),
        "scoring_errors": {
            scorer: {"count": n, "first": scoring.first_error[scorer]}
            for scorer, n in sorted(scoring.errors.items())
        },
    }
