"""The statistics of evals: intervals for one run and paired tests for two.

- `wilson`: a pass rate's interval at small n (Wilson score interval);
- `bootstrap_mean`: a mean's percentile bootstrap interval;
- `paired_bootstrap`: the mean paired difference, resampling cases (or whole clusters of cases that share
  a fixture: Miller 2024, "Adding Error Bars to Evals"), with the one-sided p-value of "the drop is no
  worse than the margin";
- `mcnemar_exact`: paired pass/fail on the discordant pairs: the exact McNemar p-value, an exact
  conditional (Clopper-Pearson) interval for the paired difference, and the p-value against a margin;
- `holm`: Holm's step-down adjustment across dimensions.

Every resampling takes a seed; the same seed and data give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

DEFAULT_RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedResult:
    """A paired difference (candidate - baseline), its interval and p-value against a margin.

    `p_value` is for H0: difference >= -margin (no regression worse than the margin), doubled so that
    p < alpha exactly when the two-sided (1 - alpha) interval lies wholly below -margin.
    """

    estimate: float
    low: float
    high: float
    p_value: float
    method: str
    n: int


def _z(confidence: float) -> float:
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


def wilson(passed: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of a pass rate `passed / n`."""
    if n <= 0:
        raise ValueError("a pass rate needs at least one case")
    if not 0 <= passed <= n:
        raise ValueError(f"passed must be within 0..{n}, got {passed}")
    z = _z(confidence)
    p = passed / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def _percentiles(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.percentile(draws, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def bootstrap_mean(
    values: Sequence[float], *, seed: int = 0, resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95
) -> Interval:
    """The mean of `values` with a percentile bootstrap interval (cases resampled with replacement)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("a mean needs at least one value")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, data.size, (resamples, data.size))
    low, high = _percentiles(data[idx].mean(axis=1), confidence)
    return Interval(float(data.mean()), low, high)


def paired_bootstrap(
    differences: Sequence[float],
    *,
    clusters: Sequence[str] | None = None,
    margin: float = 0.0,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
) -> PairedResult:
    """The mean of per-case differences with a percentile bootstrap interval.

    With `clusters` (one label per difference) whole clusters are resampled and the statistic is the
    mean over the cases drawn, so correlated cases (a shared fixture) do not shrink the interval.
    """
    d = np.asarray(differences, dtype=float)
    if d.size == 0:
        raise ValueError("a paired comparison needs at least one case in both runs")
    rng = np.random.default_rng(seed)
    if clusters is None:
        draws = d[rng.integers(0, d.size, (resamples, d.size))].mean(axis=1)
        method = "paired-bootstrap"
    else:
        if len(clusters) != d.size:
            raise ValueError("one cluster label per difference")
        labels = sorted(set(clusters))
        index = {label: i for i, label in enumerate(labels)}
        codes = np.array([index[c] for c in clusters])
        sums = np.bincount(codes, weights=d, minlength=len(labels))
        counts = np.bincount(codes, minlength=len(labels)).astype(float)
        idx = rng.integers(0, len(labels), (resamples, len(labels)))
        draws = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
        method = "cluster-bootstrap"
    low, high = _percentiles(draws, confidence)
    # The share of resampled differences at or above -margin: how plausible "no regression" is.
    tail = (np.count_nonzero(draws >= -margin) + 1) / (resamples + 1)
    return PairedResult(float(d.mean()), low, high, min(1.0, 2.0 * tail), method, int(d.size))


@dataclass(frozen=True)
class McNemar(PairedResult):
    baseline_only: int = 0  # discordant: passed in the baseline, failed in the candidate
    candidate_only: int = 0  # discordant: failed in the baseline, passed in the candidate
    p_equal: float = 1.0  # the exact McNemar p-value of "no difference at all"


def mcnemar_exact(
    baseline: Sequence[bool], candidate: Sequence[bool], *, margin: float = 0.0, confidence: float = 0.95
) -> McNemar:
    """Paired pass/fail: exact McNemar on the discordant pairs.

    Given m discordant pairs, the candidate-only count c is Binomial(m, pi) and the paired difference is
    (2 pi - 1) m / n. The Clopper-Pearson interval of pi gives the interval of the difference; the
    p-value against a margin is the exact binomial tail at pi0 = 1/2 - margin n / (2 m), doubled.
    """
    if len(baseline) != len(candidate):
        raise ValueError("paired outcomes must have the same length")
    n = len(baseline)
    if n == 0:
        raise ValueError("a paired comparison needs at least one case in both runs")
    b = sum(1 for x, y in zip(baseline, candidate, strict=True) if x and not y)
    c = sum(1 for x, y in zip(baseline, candidate, strict=True) if y and not x)
    m = b + c
    estimate = (c - b) / n
    if m == 0:
        return McNemar(0.0, 0.0, 0.0, 1.0, "mcnemar-exact", n, 0, 0, 1.0)
    p_equal = min(1.0, 2.0 * float(sps.binom.cdf(min(b, c), m, 0.5)))
    alpha = 1.0 - confidence
    pi_low = 0.0 if c == 0 else float(sps.beta.ppf(alpha / 2, c, m - c + 1))
    pi_high = 1.0 if c == m else float(sps.beta.ppf(1 - alpha / 2, c + 1, m - c))
    low, high = (2 * pi_low - 1) * m / n, (2 * pi_high - 1) * m / n
    pi0 = 0.5 - margin * n / (2 * m)
    p_margin = 1.0 if pi0 <= 0 else min(1.0, 2.0 * float(sps.binom.cdf(c, m, min(pi0, 1.0))))
    return McNemar(estimate, low, high, p_margin, "mcnemar-exact", n, b, c, p_equal)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
