"""Scoring a skill's own eval suite: every case run through `LoadedSkill.invoke`, checked per assertion.

A case's checks are its `expected` (one check: equal, or contained with `match: contains`) and each of its
`expectations` (a condition over `input` and `output`). A case scores the share of its checks that pass;
a case whose invocation fails scores 0 and says why. The suite's score is the mean over cases. Cases run
one after another with a context of their own (`eval:<digest>` as the run id), so a write skill's evals see
a stable idempotency key per case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleetplane.manifests.expression_templates import compile_condition
from fleetplane.manifests.expressions import ExprError
from fleetplane.skills.errors import SkillError
from fleetplane.skills.evalcases import EXPECTATION_NAMES, EvalCase, EvalSuite
from fleetplane.skills.loaded import LoadedSkill, SkillContext
from fleetplane.skills.schema import json_equal, shown

ContextFactory = Callable[[str, str], SkillContext]  # (run id, case id) -> the context of one case


@dataclass(frozen=True)
class CaseResult:
    id: str
    score: float
    failures: tuple[str, ...]  # what failed, one sentence each

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class EvalReport:
    skill: str
    version: str
    digest: str
    threshold: float
    cases: tuple[CaseResult, ...]

    @property
    def score(self) -> float:
        """The mean case score; a suite with no case scores 0 (nothing shows the skill works)."""
        return sum(c.score for c in self.cases) / len(self.cases) if self.cases else 0.0

    @property
    def passed(self) -> bool:
        return bool(self.cases) and self.score >= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "skill": self.skill,
            "version": self.version,
            "digest": self.digest,
            "score": round(self.score, 6),
            "threshold": self.threshold,
            "cases": [{"id": c.id, "score": c.score, "failures": list(c.failures)} for c in self.cases],
        }


def default_context(gateway_url: str | None = None, gateway_key: str | None = None) -> ContextFactory:
    def make(run_id: str, case_id: str) -> SkillContext:
        return SkillContext(
            run_id=run_id,
            step_id=case_id,
            attempt=1,
            idempotency_key=f"{run_id}:{case_id}",
            gateway_url=gateway_url,
            gateway_key=gateway_key,
            log=lambda _line: None,
        )

    return make


async def run_suite(
    skill: LoadedSkill, suite: EvalSuite, context: ContextFactory | None = None
) -> EvalReport:
    make = context or default_context()
    run_id = "eval:" + skill.ref.digest.removeprefix("sha256:")[:16]
    results = [await _run_case(skill, case, make(run_id, case.id)) for case in suite.cases]
    return EvalReport(skill.ref.name, skill.ref.version, skill.ref.digest, suite.threshold, tuple(results))


async def _run_case(skill: LoadedSkill, case: EvalCase, ctx: SkillContext) -> CaseResult:
    try:
        output = await skill.invoke(dict(case.input), ctx)
    except SkillError as exc:
        return CaseResult(case.id, 0.0, (f"the skill failed ({exc.kind}): {exc.message}",))
    checks: list[str | None] = []
    if case.expected is not None:
        checks.append(_compare(case.expected, output, case.match))
    for text in case.expectations:
        checks.append(_expect(text, case.input, output))
    failures = tuple(c for c in checks if c is not None)
    score = (len(checks) - len(failures)) / len(checks) if checks else 0.0
    return CaseResult(case.id, score, failures)


def _compare(expected: dict[str, Any], output: dict[str, Any], match: str) -> str | None:
    if match == "exact":
        return None if json_equal(expected, output) else f"expected {shown(expected)}, found {shown(output)}"
    return (
        None
        if _contains(output, expected)
        else f"expected to contain {shown(expected)}, found {shown(output)}"
    )


def _expect(text: str, input: dict[str, Any], output: dict[str, Any]) -> str | None:
    try:
        ok = compile_condition(text, EXPECTATION_NAMES).evaluate({"input": input, "output": output})
    except ExprError as exc:
        return f"expectation {text!r} could not be evaluated: {exc}"
    return None if ok else f"expectation {text!r} does not hold"


def _contains(actual: Any, expected: Any) -> bool:
    """Every expected key present and contained, a string within the string, every list item within."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _contains(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return isinstance(actual, list) and all(any(_contains(a, e) for a in actual) for e in expected)
    if isinstance(expected, str):
        return isinstance(actual, str) and expected in actual
    return json_equal(expected, actual)
