"""Deterministic similarity to a reference text: edit distance, ROUGE-L, BLEU and chrF, all in [0, 1]
(BLEU and chrF divided by 100); with `threshold` they also pass or fail."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetplane.evals.scorers import overlap
from fleetplane.evals.scorers.params import Params, reference_text
from fleetplane.evals.scoring import Sample, Score, Tier, register_scorer


@dataclass(frozen=True)
class Similarity:
    type: str
    metric: Callable[[str, str], float]
    reference: str | None
    threshold: float | None
    tier: Tier = "deterministic"

    async def score(self, sample: Sample) -> Score:
        reference = reference_text(sample, self.type, self.reference)
        value = min(1.0, max(0.0, self.metric(sample.output, reference)))
        passed = None if self.threshold is None else value >= self.threshold
        return Score(value, passed=passed)


def _factory(name: str, metric: Callable[[str, str], float]) -> Callable[[Mapping[str, Any]], Similarity]:
    def make(params: Mapping[str, Any]) -> Similarity:
        p = Params(name, params)
        threshold = p.take("threshold", (int, float), None)
        scorer = Similarity(
            name, metric, p.take("value", str, None), None if threshold is None else float(threshold)
        )
        p.done()
        return scorer

    return make


register_scorer("edit-distance", "deterministic", "1 - Levenshtein distance / longer length")(
    _factory("edit-distance", overlap.edit_similarity)
)
register_scorer("rouge-l", "deterministic", "ROUGE-L F1 against the reference")(
    _factory("rouge-l", overlap.rouge_l)
)
register_scorer("bleu", "deterministic", "sentence BLEU / 100 against the reference")(
    _factory("bleu", lambda a, b: overlap.bleu(a, b) / 100.0)
)
register_scorer("chrf", "deterministic", "chrF / 100 against the reference")(
    _factory("chrf", lambda a, b: overlap.chrf(a, b) / 100.0)
)
