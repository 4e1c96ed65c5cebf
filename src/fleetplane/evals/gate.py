"""The deploy gate: does a candidate regress on any gated dimension, beyond doubt and beyond a margin?

`evaluate_gate(baseline, candidate, ...)` takes the per-case scores of two runs of the same suite (plain
`Observation`s, so skill promotion and agent rollouts can call it with scores from anywhere) and returns
a `GateReport`. Per dimension, cases are paired by id, epochs averaged per case first, and oriented so
that higher is better (a `minimize` dimension such as cost is negated):

- pass/fail outcomes, one epoch, no shared fixtures: exact McNemar with its conditional exact interval;
- anything else continuous or averaged: paired bootstrap of the mean difference (seed recorded), or the
  cluster bootstrap when cases share a fixture id;
- p-values against the margin are Holm-adjusted across the gated dimensions.

A dimension blocks when the upper end of the 95% interval of (candidate - baseline) is below -margin and
its Holm-adjusted p-value is below alpha; it warns when the estimate drops but the interval straddles
-margin (or only Holm saves it). The report blocks when any dimension blocks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from fleetplane.evals.stats import (
    DEFAULT_RESAMPLES,
    McNemar,
    PairedResult,
    holm,
    mcnemar_exact,
    paired_bootstrap,
)

Decision = Literal["pass", "warn", "block"]
Goal = Literal["maximize", "minimize"]
Metric = Literal["pass_rate", "mean"]


@dataclass(frozen=True)
class Observation:
    """One scored answer: a dimension's score for one case in one epoch."""

    dimension: str
    case_id: str
    value: float
    passed: bool | None = None
    epoch: int = 0
    fixture: str | None = None


@dataclass(frozen=True)
class GatePolicy:
    margin: float = 0.0
    goal: Goal = "maximize"


@dataclass(frozen=True)
class DimensionVerdict:
    dimension: str
    decision: Decision
    reason: str
    metric: Metric
    method: str
    goal: Goal
    margin: float
    cases: int
    baseline: float  # the baseline's mean over the paired cases (in the dimension's own direction)
    candidate: float
    delta: float  # candidate - baseline, oriented so that negative is worse
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float
    discordant: dict[str, int] | None = None
    clusters: int | None = None


@dataclass(frozen=True)
class GateReport:
    decision: Decision
    dimensions: list[DimensionVerdict]
    alpha: float
    seed: int
    resamples: int
    baseline_run: str | None = None
    candidate_run: str | None = None
    unpaired: dict[str, int] = field(default_factory=dict)  # cases in only one run, per side

    @property
    def blocked(self) -> bool:
        return self.decision == "block"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _per_case(observations: Iterable[Observation]) -> dict[str, dict[str, list[Observation]]]:
    by: dict[str, dict[str, list[Observation]]] = defaultdict(lambda: defaultdict(list))
    for o in observations:
        by[o.dimension][o.case_id].append(o)
    return by


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)


def _level(observations: list[Observation], as_pass: bool) -> float:
    """One case's score: the mean over its epochs of its pass (0/1) or its value."""
    return _mean(float(bool(o.passed)) if as_pass else o.value for o in observations)


@dataclass(frozen=True)
class _Compared:
    name: str
    policy: GatePolicy
    result: PairedResult
    metric: Metric
    baseline: float
    candidate: float
    clusters: int | None


def _compare(
    name: str,
    policy: GatePolicy,
    b_cases: Mapping[str, list[Observation]],
    c_cases: Mapping[str, list[Observation]],
    *,
    seed: int,
    resamples: int,
) -> _Compared:
    """One dimension: the paired test its data calls for (see the module docstring)."""
    ids = sorted(set(b_cases) & set(c_cases))
    if not ids:
        raise ValueError(f"dimension {name!r}: no case was scored in both runs")
    fixtures = [b_cases[i][0].fixture or c_cases[i][0].fixture for i in ids]
    clustered = any(f is not None for f in fixtures) and len(set(fixtures)) < len(ids)
    sides = (b_cases, c_cases)
    binary = all(len(side[i]) == 1 and side[i][0].passed is not None for side in sides for i in ids)
    if binary and not clustered:
        b_pass = [bool(b_cases[i][0].passed) for i in ids]
        c_pass = [bool(c_cases[i][0].passed) for i in ids]
        result: PairedResult = mcnemar_exact(b_pass, c_pass, margin=policy.margin)
        return _Compared(
            name, policy, result, "pass_rate", _mean(map(float, b_pass)), _mean(map(float, c_pass)), None
        )
    has_pass = all(o.passed is not None for side in sides for i in ids for o in side[i])
    b_vals = [_level(b_cases[i], has_pass) for i in ids]
    c_vals = [_level(c_cases[i], has_pass) for i in ids]
    sign = -1.0 if policy.goal == "minimize" else 1.0  # oriented: negative is always worse
    diffs = [sign * (c - b) for b, c in zip(b_vals, c_vals, strict=True)]
    labels = [f if f is not None else f"case:{i}" for f, i in zip(fixtures, ids, strict=True)]
    result = paired_bootstrap(
        diffs, clusters=labels if clustered else None, margin=policy.margin, seed=seed, resamples=resamples
    )
    metric: Metric = "pass_rate" if has_pass else "mean"
    return _Compared(
        name, policy, result, metric, _mean(b_vals), _mean(c_vals), len(set(fixtures)) if clustered else None
    )


def evaluate_gate(
    baseline: Iterable[Observation],
    candidate: Iterable[Observation],
    *,
    policies: Mapping[str, GatePolicy] | None = None,
    margin: float | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    baseline_run: str | None = None,
    candidate_run: str | None = None,
) -> GateReport:
    """Compare two runs; `policies` names the gated dimensions (default: every dimension in both runs,
    maximized); `margin`, when given, overrides every policy's margin."""
    base, cand = _per_case(baseline), _per_case(candidate)
    names = list(policies) if policies is not None else sorted(set(base) & set(cand))
    compared: list[_Compared] = []
    unpaired = {"baseline_only": 0, "candidate_only": 0}
    for name in names:
        policy = (policies or {}).get(name, GatePolicy())
        if margin is not None:
            policy = GatePolicy(margin=margin, goal=policy.goal)
        b_cases, c_cases = base.get(name, {}), cand.get(name, {})
        unpaired["baseline_only"] = max(unpaired["baseline_only"], len(set(b_cases) - set(c_cases)))
        unpaired["candidate_only"] = max(unpaired["candidate_only"], len(set(c_cases) - set(b_cases)))
        compared.append(_compare(name, policy, b_cases, c_cases, seed=seed, resamples=resamples))

    adjusted = holm([c.result.p_value for c in compared])
    verdicts = [_verdict(c, p_holm, alpha) for c, p_holm in zip(compared, adjusted, strict=True)]
    decisions = {v.decision for v in verdicts}
    overall: Decision = "block" if "block" in decisions else "warn" if "warn" in decisions else "pass"
    return GateReport(overall, verdicts, alpha, seed, resamples, baseline_run, candidate_run, unpaired)


def _verdict(c: _Compared, p_holm: float, alpha: float) -> DimensionVerdict:
    policy, result = c.policy, c.result
    bound = -policy.margin
    shown = f"{result.estimate:+.4f} [{result.low:+.4f}, {result.high:+.4f}]"
    # Differences are oriented so that negative is worse: for a minimized dimension that is base - cand.
    what = "candidate - baseline" if policy.goal == "maximize" else "baseline - candidate (lower is better)"
    decision: Decision
    if result.high < bound and p_holm < alpha:
        decision, reason = "block", f"{what} = {shown}, wholly below -{policy.margin:g}"
    elif result.high < bound:
        decision, reason = "warn", f"{shown} below -{policy.margin:g} but not after Holm (p={p_holm:.3g})"
    elif result.estimate < 0 and result.low < bound:
        decision, reason = (
            "warn",
            f"the estimate drops, {shown}, and the interval straddles -{policy.margin:g}",
        )
    else:
        decision, reason = "pass", f"{what} = {shown}"
    discordant = (
        {"baseline_only": result.baseline_only, "candidate_only": result.candidate_only}
        if isinstance(result, McNemar)
        else None
    )
    return DimensionVerdict(
        c.name,
        decision,
        reason,
        c.metric,
        result.method,
        policy.goal,
        policy.margin,
        result.n,
        c.baseline,
        c.candidate,
        result.estimate,
        result.low,
        result.high,
        result.p_value,
        p_holm,
        discordant,
        c.clusters,
    )
