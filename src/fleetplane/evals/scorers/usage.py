"""Cost, latency and token dimensions: raw numbers from the gateway's response (usage, the
x-fleetplane cost header) and the measured call time. With `max` they pass or fail; a dimension built
on them usually has `goal: minimize`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetplane.evals.scorers.params import Params
from fleetplane.evals.scoring import Sample, Score, ScorerError, Tier, register_scorer


@dataclass(frozen=True)
class UsageScorer:
    type: str
    maximum: float | None
    which: str = "total"
    tier: Tier = "usage"

    def measure(self, sample: Sample) -> float | None:
        if self.type == "cost":
            return sample.cost_usd
        if self.type == "latency":
            return sample.latency_ms
        if sample.usage is None:
            return None
        return float(
            {
                "input": sample.usage.input_tokens,
                "output": sample.usage.output_tokens,
                "total": sample.usage.total_tokens,
            }[self.which]
        )

    async def score(self, sample: Sample) -> Score:
        measured = self.measure(sample)
        if measured is None:
            return Score(0.0, passed=False, unit="raw", explanation=f"the target reported no {self.type}")
        passed = None if self.maximum is None else measured <= self.maximum
        explanation = "" if passed is not False else f"{measured:g} above the maximum {self.maximum:g}"
        return Score(measured, passed=passed, unit="raw", explanation=explanation)


def _make(name: str) -> Any:
    def make(params: Mapping[str, Any]) -> UsageScorer:
        p = Params(name, params)
        maximum = p.take("max", (int, float), None)
        which = p.take("which", str, "total") if name == "tokens" else "total"
        if which not in ("input", "output", "total"):
            raise ScorerError(
                f"scorer 'tokens': 'which' must be input, output or total, found {which!r}", param="which"
            )
        p.done()
        return UsageScorer(name, None if maximum is None else float(maximum), which)

    return make


register_scorer("cost", "usage", "the target call's cost in US dollars (the gateway's charge)")(_make("cost"))
register_scorer("latency", "usage", "the target call's wall time in milliseconds")(_make("latency"))
register_scorer("tokens", "usage", "tokens used by the target call (input, output or total)")(_make("tokens"))
