"""Skill promotion through the statistical gate: a real regression is refused, noise is not."""

from __future__ import annotations

import asyncio

from fleetplane.cli.evals_skillgate import StatisticalSkillGate
from fleetplane.skills.evalrun import CaseResult, EvalReport


def _report(version: str, failing: set[int], n: int = 60, threshold: float = 0.5) -> EvalReport:
    cases = tuple(
        CaseResult(f"c{i}", 0.0 if i in failing else 1.0, ("wrong",) if i in failing else ())
        for i in range(n)
    )
    return EvalReport("summarize", version, "digest", threshold, cases)


def test_a_real_regression_is_refused_and_a_small_one_is_not() -> None:
    gate = StatisticalSkillGate(margin=0.0)
    current = _report("1.0.0", set())
    worse = asyncio.run(gate(_report("1.1.0", set(range(10))), current))
    assert not worse.allowed
    assert worse.reason.startswith(
        "summarize@1.1.0 regresses against summarize@1.0.0, which it would replace: pass rate 1.00 -> 0.83"
    )
    assert worse.reason.endswith("(mcnemar-exact)")
    # Two flipped cases out of 60 is not evidence of a regression (exact McNemar p = 0.5).
    noise = asyncio.run(gate(_report("1.1.1", {3, 7}), current))
    assert noise.allowed
    assert "against summarize@1.0.0: warn" in noise.reason


def test_the_candidates_own_threshold_and_first_versions() -> None:
    gate = StatisticalSkillGate()
    low = asyncio.run(gate(_report("2.0.0", set(range(40)), threshold=0.9), None))
    assert (low.allowed, low.reason) == (
        False,
        "summarize@2.0.0 scores 0.33 on its eval suite, below its threshold 0.90 "
        "(failing: c0, c1, c2, c3, c4 and 35 more)",
    )
    first = asyncio.run(gate(_report("1.0.0", set()), None))
    assert (first.allowed, first.reason) == (True, "summarize@1.0.0 scores 1.00 (threshold 0.50)")
    empty = asyncio.run(gate(EvalReport("summarize", "3.0.0", "d", 0.5, ()), None))
    assert (empty.allowed, empty.reason) == (
        False,
        "summarize@3.0.0 has no eval cases (evals/): nothing shows it works",
    )
