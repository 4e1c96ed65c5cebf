"""The statistics against reference values (scipy, and statsmodels' published results)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from fleetplane.evals.stats import bootstrap_mean, holm, mcnemar_exact, paired_bootstrap, wilson


def test_wilson_matches_statsmodels_reference() -> None:
    # statsmodels.stats.proportion.proportion_confint(8, 10, method="wilson")
    interval = wilson(8, 10)
    assert interval.estimate == 0.8
    assert interval.low == pytest.approx(0.4901624715, abs=1e-9)
    assert interval.high == pytest.approx(0.9433178485, abs=1e-9)
    # With no passes the upper end is z^2 / (n + z^2).
    zero = wilson(0, 20)
    z2 = sps.norm.ppf(0.975) ** 2
    assert zero.low == 0.0
    assert zero.high == pytest.approx(z2 / (20 + z2), abs=1e-12)


def test_wilson_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="at least one case"):
        wilson(0, 0)
    with pytest.raises(ValueError, match=r"within 0\.\.5"):
        wilson(6, 5)


def test_bootstrap_mean_matches_scipy_percentile_bootstrap() -> None:
    data = np.random.default_rng(1).normal(0.1, 1.0, 50)
    ours = bootstrap_mean(data, seed=3)
    ref = sps.bootstrap(
        (data,),
        np.mean,
        method="percentile",
        n_resamples=10_000,
        rng=np.random.default_rng(3),
        vectorized=True,
    ).confidence_interval
    assert ours.estimate == pytest.approx(float(data.mean()))
    assert ours.low == pytest.approx(ref.low, abs=1e-12)
    assert ours.high == pytest.approx(ref.high, abs=1e-12)


def test_paired_bootstrap_is_the_bootstrap_of_differences_and_reproducible() -> None:
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 1, 80)
    cand = base - 0.05 + rng.normal(0, 0.05, 80)
    diffs = cand - base
    ours = paired_bootstrap(list(diffs), seed=11)
    ref = sps.bootstrap(
        (diffs,),
        np.mean,
        method="percentile",
        n_resamples=10_000,
        rng=np.random.default_rng(11),
        vectorized=True,
    ).confidence_interval
    assert (ours.low, ours.high) == (pytest.approx(ref.low, abs=1e-12), pytest.approx(ref.high, abs=1e-12))
    assert ours.method == "paired-bootstrap"
    assert paired_bootstrap(list(diffs), seed=11) == ours
    assert paired_bootstrap(list(diffs), seed=12) != ours


def test_cluster_bootstrap_resamples_whole_fixtures() -> None:
    # Two fixtures: every case of fixture "a" moved +1, of "b" -1. Resampling cases sees 100 independent
    # values; resampling the 2 clusters sees only 3 possible means (-1, 0, +1).
    diffs = [1.0] * 50 + [-1.0] * 50
    clusters = ["a"] * 50 + ["b"] * 50
    clustered = paired_bootstrap(diffs, clusters=clusters, seed=5)
    plain = paired_bootstrap(diffs, seed=5)
    assert clustered.method == "cluster-bootstrap"
    assert (clustered.low, clustered.high) == (-1.0, 1.0)
    assert plain.high - plain.low < 0.5
    # Cluster means weight by size: a 3-case cluster at 0 and a 1-case cluster at 1, both drawn -> 0.25.
    draws = paired_bootstrap([0.0, 0.0, 0.0, 1.0], clusters=["x", "x", "x", "y"], seed=0, resamples=2000)
    assert draws.estimate == 0.25


def test_mcnemar_exact_matches_the_binomial_test() -> None:
    baseline = [True] * 10 + [False] * 2 + [True] * 20 + [False] * 8
    candidate = [False] * 10 + [True] * 2 + [True] * 20 + [False] * 8
    result = mcnemar_exact(baseline, candidate)
    assert (result.baseline_only, result.candidate_only) == (10, 2)
    assert result.p_equal == pytest.approx(sps.binomtest(2, 12, 0.5).pvalue, abs=1e-12)
    assert result.p_equal == pytest.approx(158 / 4096, abs=1e-12)
    assert result.estimate == pytest.approx(-8 / 40)
    # The interval is the Clopper-Pearson interval of pi = c / m mapped to (2 pi - 1) m / n.
    cp = sps.binomtest(2, 12).proportion_ci(0.95, method="exact")
    assert result.low == pytest.approx((2 * cp.low - 1) * 12 / 40, abs=1e-9)
    assert result.high == pytest.approx((2 * cp.high - 1) * 12 / 40, abs=1e-9)
    # At margin 0 the margin p-value is the exact McNemar p-value, and it agrees with the interval.
    assert result.p_value == pytest.approx(result.p_equal)
    assert result.high < 0 and result.p_value < 0.05


def test_mcnemar_margin_p_value_agrees_with_the_interval() -> None:
    baseline = [True] * 30 + [False] * 5 + [True] * 65
    candidate = [False] * 30 + [True] * 5 + [True] * 65
    result = mcnemar_exact(baseline, candidate, margin=0.1)
    # -0.25 with an interval whose top is above -0.1? then p >= 0.05, else below.
    assert (result.high < -0.1) == (result.p_value < 0.05)
    same = mcnemar_exact([True, False], [True, False])
    assert (same.estimate, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_holm_matches_reference_adjustment() -> None:
    # statsmodels.stats.multitest.multipletests([0.01, 0.04, 0.03, 0.005], method="holm")[1]
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5]
    assert holm([0.6, 0.7]) == [1.0, 1.0]
