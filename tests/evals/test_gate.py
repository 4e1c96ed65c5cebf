"""The deploy gate blocks a real regression and passes noise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fleetplane.evals.gate import GatePolicy, Observation, evaluate_gate

N = 400
# Fixed case difficulties: every run of the same target draws its passes from the same probabilities.
_P = np.random.default_rng(2024).beta(4, 1, N)  # mean 0.8


def _run(seed: int, shift: float = 0.0, dimension: str = "correctness") -> list[Observation]:
    draws = np.random.default_rng(seed).uniform(size=N)
    return [
        Observation(dimension, f"case-{i}", float(u < _P[i] + shift), bool(u < _P[i] + shift))
        for i, u in enumerate(draws)
    ]


def test_a_ten_point_drop_on_400_cases_blocks() -> None:
    baseline, candidate = _run(seed=1), _run(seed=2, shift=-0.10)
    report = evaluate_gate(baseline, candidate, margin=0.02, baseline_run="a", candidate_run="b")
    [verdict] = report.dimensions
    assert report.decision == "block" and report.blocked
    assert verdict.method == "mcnemar-exact" and verdict.metric == "pass_rate"
    assert verdict.cases == N
    assert verdict.delta == pytest.approx(verdict.candidate - verdict.baseline)
    assert -0.14 < verdict.delta < -0.06
    assert verdict.ci_high < -0.02
    assert verdict.p_value < 0.05 and verdict.p_holm == verdict.p_value
    assert verdict.discordant is not None
    assert verdict.delta == pytest.approx(
        (verdict.discordant["candidate_only"] - verdict.discordant["baseline_only"]) / N
    )


@pytest.mark.parametrize("seeds", [(1, 2), (3, 4), (5, 6)])
def test_two_runs_of_the_same_target_pass(seeds: tuple[int, int]) -> None:
    report = evaluate_gate(_run(seeds[0]), _run(seeds[1]), margin=0.02)
    assert report.decision in ("pass", "warn")
    assert all(v.decision != "block" for v in report.dimensions)
    assert report.dimensions[0].ci_low < 0 < report.dimensions[0].ci_high


def test_a_drop_straddling_the_margin_warns() -> None:
    baseline = [Observation("q", f"c{i}", 1.0, True) for i in range(40)]
    candidate = [Observation("q", f"c{i}", float(i >= 3), i >= 3) for i in range(40)]
    report = evaluate_gate(baseline, candidate, margin=0.05)
    [v] = report.dimensions
    assert v.delta == pytest.approx(-3 / 40)
    assert v.ci_low < -0.05 < v.ci_high
    assert (report.decision, v.decision) == ("warn", "warn")
    assert "straddles -0.05" in v.reason


def test_continuous_scores_use_the_paired_bootstrap_with_the_seed_recorded() -> None:
    rng = np.random.default_rng(9)
    base_vals = rng.uniform(0.5, 1.0, 200)
    baseline = [Observation("rouge", f"c{i}", float(v)) for i, v in enumerate(base_vals)]
    candidate = [Observation("rouge", f"c{i}", float(v - 0.1)) for i, v in enumerate(base_vals)]
    report = evaluate_gate(baseline, candidate, margin=0.05, seed=42, resamples=2000)
    [v] = report.dimensions
    assert (v.method, v.metric, report.seed, report.resamples) == ("paired-bootstrap", "mean", 42, 2000)
    assert v.delta == pytest.approx(-0.1) and v.ci_high == pytest.approx(-0.1)
    assert report.decision == "block"
    again = evaluate_gate(baseline, candidate, margin=0.05, seed=42, resamples=2000)
    assert again == report


def test_shared_fixtures_switch_to_the_cluster_bootstrap() -> None:
    baseline = [Observation("q", f"c{i}", 1.0, True, fixture=f"f{i % 4}") for i in range(40)]
    # One whole fixture regresses: with only 4 clusters the interval is wide and the gate cannot block.
    candidate = [
        Observation("q", f"c{i}", float(i % 4 != 0), i % 4 != 0, fixture=f"f{i % 4}") for i in range(40)
    ]
    report = evaluate_gate(baseline, candidate, margin=0.0, seed=1, resamples=2000)
    [v] = report.dimensions
    assert (v.method, v.clusters) == ("cluster-bootstrap", 4)
    assert v.delta == pytest.approx(-0.25)
    assert v.decision == "warn"


def test_epochs_are_averaged_per_case_before_pairing() -> None:
    baseline = [Observation("q", f"c{i}", 1.0, True, epoch=e) for i in range(30) for e in range(3)]
    candidate = [Observation("q", f"c{i}", float(e > 0), e > 0, epoch=e) for i in range(30) for e in range(3)]
    [v] = evaluate_gate(baseline, candidate, seed=0, resamples=1000).dimensions
    assert v.method == "paired-bootstrap" and v.cases == 30
    assert v.delta == pytest.approx(-1 / 3)
    assert v.decision == "block"


def test_minimize_dimensions_treat_a_cost_rise_as_the_regression() -> None:
    baseline = [Observation("cost", f"c{i}", 0.010) for i in range(50)]
    cheaper = [Observation("cost", f"c{i}", 0.008) for i in range(50)]
    dearer = [Observation("cost", f"c{i}", 0.012) for i in range(50)]
    policy = {"cost": GatePolicy(margin=0.001, goal="minimize")}
    assert evaluate_gate(baseline, cheaper, policies=policy, resamples=500).decision == "pass"
    report = evaluate_gate(baseline, dearer, policies=policy, resamples=500)
    assert report.decision == "block"
    assert report.dimensions[0].delta == pytest.approx(-0.002)


def test_holm_across_dimensions_can_turn_a_block_into_a_warning() -> None:
    # One weak regression alone blocks; next to nine clean dimensions, Holm needs 10x the evidence.
    n = 60
    base = [Observation("d0", f"c{i}", 1.0, True) for i in range(n)]
    cand = [Observation("d0", f"c{i}", float(i >= 7), i >= 7) for i in range(n)]
    alone = evaluate_gate(base, cand)
    assert alone.decision == "block"
    for d in range(1, 10):
        base += [Observation(f"d{d}", f"c{i}", 1.0, True) for i in range(n)]
        cand += [Observation(f"d{d}", f"c{i}", 1.0, True) for i in range(n)]
    crowded = evaluate_gate(base, cand)
    d0 = next(v for v in crowded.dimensions if v.dimension == "d0")
    assert d0.p_value == alone.dimensions[0].p_value
    assert d0.p_holm == pytest.approx(min(1.0, 10 * d0.p_value))
    assert (d0.decision, crowded.decision) == ("warn", "warn")
    assert "not after Holm" in d0.reason


def test_the_report_is_machine_readable_and_counts_unpaired_cases() -> None:
    baseline = [Observation("q", f"c{i}", 1.0, True) for i in range(12)]
    candidate = [Observation("q", f"c{i}", 1.0, True) for i in range(2, 14)]
    report = evaluate_gate(baseline, candidate, baseline_run="r1", candidate_run="r2")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["decision"] == "pass"
    assert data["unpaired"] == {"baseline_only": 2, "candidate_only": 2}
    assert data["dimensions"][0]["cases"] == 10
    assert (data["baseline_run"], data["candidate_run"]) == ("r1", "r2")


def test_a_dimension_with_no_shared_case_is_an_error() -> None:
    with pytest.raises(ValueError, match="dimension 'q': no case was scored in both runs"):
        evaluate_gate(
            [Observation("q", "a", 1.0)], [Observation("q", "b", 1.0)], policies={"q": GatePolicy()}
        )
