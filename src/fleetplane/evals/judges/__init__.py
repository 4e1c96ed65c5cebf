"""LLM-as-judge scorers, called through the gateway over HTTP: `llm-rubric` (direct grading) and
`llm-pairwise` (judged in both orders; disagreement flags the item), single judges or pooled panels.

The judge must come from a different model family than the target (`family`): refused when a suite is
loaded (`check_suite_judges`) and again for every item scored, unless overridden; an override is recorded
in each score's details. Importing this package registers the scorer types in `fleetplane.evals.scoring`.
"""

from __future__ import annotations

from fleetplane.evals.judges.client import JudgeClient, JudgeError, JudgeReply
from fleetplane.evals.judges.family import FamilyCheck, FamilyError, ModelCatalog, ModelInfo, check_family
from fleetplane.evals.judges.pairwise import PairwiseJudge, llm_pairwise
from fleetplane.evals.judges.panel import configure_judges
from fleetplane.evals.judges.rubric import RubricJudge, llm_rubric
from fleetplane.evals.judges.suite import JUDGE_TYPES, check_suite_judges, suite_judge_params

__all__ = [
    "JUDGE_TYPES",
    "FamilyCheck",
    "FamilyError",
    "JudgeClient",
    "JudgeError",
    "JudgeReply",
    "ModelCatalog",
    "ModelInfo",
    "PairwiseJudge",
    "RubricJudge",
    "check_family",
    "check_suite_judges",
    "configure_judges",
    "llm_pairwise",
    "llm_rubric",
    "suite_judge_params",
]
