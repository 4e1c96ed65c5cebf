"""`checks`: a case's own checks, as Agent Skills eval files write them, scored as the share that pass.

The checks of a case are its `expected` answer (compared exactly, or as a subset with the case's
`metadata.match: contains`: every expected key present, strings contained, lists included) and each of
its `expectations` (from `metadata.expectations`, `vars.checks`, or the scorer's own `expectations`):
expressions of the manifests' safe expression language over `input`, `output` (the structured answer when
the target returned data, else the text) and `expected`, each of which must be true.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetplane.evals.scorers.match import parse_json
from fleetplane.evals.scorers.params import Params
from fleetplane.evals.scoring import Sample, Score, ScorerError, Tier, register_scorer
from fleetplane.manifests.expressions import ExprError, Expression, compile_expr

NAMES = ("input", "output", "expected")


def subset(expected: Any, actual: Any) -> bool:
    """`expected` is contained in `actual`: keys recursively, strings as substrings, list items included."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and subset(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return isinstance(actual, list) and all(any(subset(e, a) for a in actual) for e in expected)
    if isinstance(expected, str) and isinstance(actual, str):
        return expected in actual
    return bool(expected == actual)


def _compile(sources: Sequence[Any], where: str) -> list[Expression]:
    compiled = []
    for source in sources:
        try:
            compiled.append(compile_expr(str(source), names=NAMES))
        except ExprError as exc:
            raise ScorerError(f"{where}: {exc}", param="expectations") from exc
    return compiled


@dataclass(frozen=True)
class Checks:
    expectations: tuple[Expression, ...]
    type: str = "checks"
    tier: Tier = "deterministic"

    async def score(self, sample: Sample) -> Score:
        output: Any = sample.structured
        if output is None:
            data, error = parse_json(sample)
            output = data if error is None and isinstance(data, dict | list) else sample.output
        failures: list[str] = []
        total = 0
        if sample.expected is not None:
            total += 1
            contains = sample.metadata.get("match") == "contains"
            ok = subset(sample.expected, output) if contains else output == sample.expected
            if not ok:
                failures.append(
                    f"the output does not {'contain' if contains else 'equal'} the expected answer"
                )
        own = list(sample.metadata.get("expectations") or []) + list(sample.vars.get(self.type) or [])
        try:
            expressions = list(self.expectations) + _compile(own, f"case {sample.case_id}")
        except ScorerError as exc:
            return Score(0.0, passed=False, explanation=str(exc))
        scope = {"input": sample.input, "output": output, "expected": sample.expected}
        for expression in expressions:
            total += 1
            try:
                if not expression.evaluate(scope):
                    failures.append(f"{expression.source} is false")
            except ExprError as exc:
                failures.append(str(exc))
        if total == 0:
            return Score(0.0, passed=False, explanation="the case has no expected answer and no expectations")
        return Score((total - len(failures)) / total, passed=not failures, explanation="; ".join(failures))


@register_scorer(
    "checks", "deterministic", "the share of a case's expected answer and expectations that hold"
)
def _checks(params: Mapping[str, Any]) -> Checks:
    p = Params("checks", params)
    sources = p.take("expectations", list, [])
    p.done()
    return Checks(tuple(_compile(sources, "scorer 'checks'")))
