"""The eval gate on promote: may this version serve, given its own eval report and the serving one's?

`EvalGate` is a Protocol so the top floor can hand the registry a different decision — the evals wing's
statistical gate (a regression that is real, not noise, over epochs and dimensions) — without the skills
wing importing it. `ThresholdGate` is the default: the candidate must reach its own suite's threshold,
and must not score below the version it would replace (less `tolerance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fleetplane.skills.evalrun import EvalReport

SHOWN_FAILURES = 5  # case ids named in a refusal; a suite can fail hundreds


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reason: str  # why, naming both versions and scores; shown by `promote` and kept in the audit entry


class EvalGate(Protocol):
    async def __call__(self, candidate: EvalReport, current: EvalReport | None) -> GateDecision: ...


@dataclass(frozen=True)
class ThresholdGate:
    tolerance: float = 0.0

    async def __call__(self, candidate: EvalReport, current: EvalReport | None) -> GateDecision:
        name = f"{candidate.skill}@{candidate.version}"
        if not candidate.cases:
            return GateDecision(False, f"{name} has no eval cases (evals/): nothing shows it works")
        score = f"{candidate.score:.2f}"
        failed = [c.id for c in candidate.cases if not c.passed]
        more = f" and {len(failed) - SHOWN_FAILURES} more" if len(failed) > SHOWN_FAILURES else ""
        failing = f" (failing: {', '.join(failed[:SHOWN_FAILURES])}{more})" if failed else ""
        if candidate.score < candidate.threshold:
            below = f"below its threshold {candidate.threshold:.2f}"
            return GateDecision(False, f"{name} scores {score} on its eval suite, {below}{failing}")
        if current is not None and candidate.score < current.score - self.tolerance:
            return GateDecision(
                False,
                f"{name} scores {score} on its eval suite, below {current.score:.2f} of "
                f"{current.skill}@{current.version}, which it would replace{failing}",
            )
        against = f"; {current.skill}@{current.version} scores {current.score:.2f}" if current else ""
        return GateDecision(True, f"{name} scores {score} (threshold {candidate.threshold:.2f}){against}")
