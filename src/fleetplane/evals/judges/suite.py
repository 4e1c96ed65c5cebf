"""The family rule at suite load: every judge scorer of an `EvalSuite` against the suite's target model."""

from __future__ import annotations

from typing import Any

from fleetplane.evals.judges.family import FamilyCheck, FamilyError, ModelCatalog, check_family

JUDGE_TYPES = frozenset({"llm-rubric", "llm-pairwise"})


def check_suite_judges(suite: Any, catalog: ModelCatalog) -> list[FamilyCheck]:
    """Check each judge a suite names (a scorer's `judge`/`judges`, else the suite's `spec.judge`) against
    a model target's family. Raises `FamilyError` naming the dimension; returns the checks (overrides
    included) to be recorded with the run."""
    spec = suite.spec
    target = spec.target.model  # agents, skills and pipelines are checked per item at run time
    checks: list[FamilyCheck] = []
    for dimension in spec.dimensions:
        for scorer in dimension.scorers:
            if scorer.type not in JUDGE_TYPES:
                continue
            params = scorer.params
            raw = params.get("judges") or params.get("judge") or spec.judge
            models = [raw] if isinstance(raw, str) else list(raw or [])
            if not models:
                raise FamilyError(
                    f"suite {suite.name}: dimension {dimension.name!r} uses {scorer.type} without a judge "
                    "(set the scorer's 'judge' or the suite's spec.judge)"
                )
            allow = bool(
                spec.allow_same_family_judge
                or params.get("allowSameFamily")
                or params.get("allow_same_family")
            )
            for model in models:
                try:
                    checks.append(check_family(model, target, catalog, allow_same_family=allow))
                except FamilyError as exc:
                    raise FamilyError(f"suite {suite.name}: dimension {dimension.name!r}: {exc}") from None
    return checks


def suite_judge_params(spec: Any, params: dict[str, Any]) -> dict[str, Any]:
    """A judge scorer's parameters with the suite's defaults merged in: its `judge` (when the scorer names
    none), `allowSameFamilyJudge`, and a model target (so a same-family judge is refused at load)."""
    merged = dict(params)
    if not (merged.get("judge") or merged.get("judges")) and spec.judge:
        merged["judge"] = spec.judge
    if spec.allow_same_family_judge:
        merged.setdefault("allow_same_family", True)
    if spec.target.model and not merged.get("target_model"):
        merged["target_model"] = spec.target.model
    return merged
