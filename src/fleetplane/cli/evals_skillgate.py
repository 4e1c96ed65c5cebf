"""The evals wing's statistical gate in the shape skill promotion asks for (`skills.gate.EvalGate`).

The top floor composes the two wings: `fleetplane.cli.skill.gate_factory = StatisticalSkillGate` makes
`fleetplane skill promote` refuse a version only on a regression that is real — the candidate's own
suite threshold still applies, and against the serving version the cases are paired by id and judged by
`fleetplane.evals.gate.evaluate_gate` (exact McNemar on pass/fail, a margin) instead of comparing two
means.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetplane.evals.gate import GatePolicy, Observation, evaluate_gate
from fleetplane.skills.evalrun import EvalReport
from fleetplane.skills.gate import GateDecision, ThresholdGate

DIMENSION = "checks"


def observations(report: EvalReport) -> list[Observation]:
    return [Observation(DIMENSION, case.id, case.score, case.passed) for case in report.cases]


@dataclass(frozen=True)
class StatisticalSkillGate:
    margin: float = 0.0  # a drop in pass rate the gate tolerates (0.05: five points)
    seed: int = 0

    async def __call__(self, candidate: EvalReport, current: EvalReport | None) -> GateDecision:
        # The candidate's own threshold is the skills wing's rule, with its message (failing case ids).
        own = await ThresholdGate()(candidate, None)
        if not own.allowed or current is None or not current.cases:
            return own
        name = f"{candidate.skill}@{candidate.version}"
        score = f"{candidate.score:.2f}"
        other = f"{current.skill}@{current.version}"
        try:
            report = evaluate_gate(
                observations(current),
                observations(candidate),
                policies={DIMENSION: GatePolicy(margin=self.margin)},
                seed=self.seed,
            )
        except ValueError:
            return GateDecision(
                True,
                f"{name} scores {score}; no eval case in common with {other}, so only its threshold applies",
            )
        [verdict] = report.dimensions
        if report.blocked:
            return GateDecision(
                False,
                f"{name} regresses against {other}, which it would replace: pass rate "
                f"{verdict.baseline:.2f} -> {verdict.candidate:.2f}, {verdict.reason} ({verdict.method})",
            )
        return GateDecision(
            True,
            f"{name} scores {score}; against {other}: {verdict.decision}: {verdict.reason} "
            f"({verdict.method})",
        )
