"""`llm-rubric`: a judge (or a panel, pooled by the mean) grades one answer against a rubric on a 1..N scale.

Parameters: `rubric` (what a good answer is), `judge` or `judges`, `scale` (default 5), `threshold` (the
normalised score an answer needs to pass, default 0.6), `allowSameFamily` (record, do not refuse, a
judge of the target's family). The value is (score - 1) / (scale - 1). The item is flagged
`judge-uncertain` when the pooled value sits in the middle band or the panel's members disagree widely:
that is what the review queue takes from the judge tier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetplane.evals.judges.client import JudgeError, JudgeReply
from fleetplane.evals.judges.panel import JudgePanel, as_text, details
from fleetplane.evals.scoring import Sample, Score, ScorerError, Tier, register_scorer

UNCERTAIN_BAND = (0.4, 0.6)  # pooled values in here are neither a clear pass nor a clear fail
PANEL_SPREAD = 0.5  # members further apart than this (normalised) disagree

SYSTEM = (
    "You are an impartial evaluator. Grade the ASSISTANT ANSWER to the USER REQUEST against the RUBRIC. "
    "Judge substance, not length or style. Call record_verdict with an integer score from 1 (fails the "
    "rubric) to {scale} (fully meets it) and a one-sentence reason."
)


@dataclass
class RubricJudge:
    panel: JudgePanel
    rubric: str
    scale: int
    threshold: float
    type: str = "llm-rubric"
    tier: Tier = "judge"

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "score": {"type": "integer", "minimum": 1, "maximum": self.scale},
                "reason": {"type": "string", "maxLength": 300},
            },
            "required": ["score", "reason"],
        }

    async def score(self, sample: Sample) -> Score:
        checks = self.panel.check(sample)
        messages = [
            {"role": "system", "content": SYSTEM.format(scale=self.scale)},
            {
                "role": "user",
                "content": f"RUBRIC:\n{self.rubric}\n\nUSER REQUEST:\n{as_text(sample.input)}\n\n"
                + (f"REFERENCE ANSWER:\n{sample.reference_text}\n\n" if sample.reference_text else "")
                + f"ASSISTANT ANSWER:\n{sample.output}",
            },
        ]
        replies = await self.panel.each(
            lambda model: self.panel.client.verdict(model, messages, self.schema(), kind="rubric")
        )
        values = [self._value(r) for r in replies]
        pooled = sum(values) / len(values)
        flags: list[str] = []
        if UNCERTAIN_BAND[0] <= pooled <= UNCERTAIN_BAND[1] or max(values) - min(values) > PANEL_SPREAD:
            flags.append("judge-uncertain")
        reasons = "; ".join(f"{r.model}: {str(r.arguments.get('reason', ''))[:200]}" for r in replies)
        return Score(
            value=pooled,
            passed=pooled >= self.threshold,
            explanation=reasons,
            cost_usd=sum(r.cost_usd for r in replies),
            latency_ms=max(r.latency_ms for r in replies),
            flags=tuple(flags),
            details={**details(checks, replies), "values": dict(zip(self.panel.models, values, strict=True))},
        )

    def _value(self, reply: JudgeReply) -> float:
        raw = reply.arguments.get("score")
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 1 <= raw <= self.scale:
            raise JudgeError(f"judge {reply.model!r} gave score {raw!r}; expected 1..{self.scale}")
        return (float(raw) - 1) / (self.scale - 1)


@register_scorer("llm-rubric", "judge", "An LLM judge (or panel) grades the answer against a rubric, 1..N.")
def llm_rubric(params: Mapping[str, Any]) -> RubricJudge:
    rubric = params.get("rubric")
    if not isinstance(rubric, str) or not rubric.strip():
        raise ScorerError("llm-rubric needs 'rubric': what a good answer is", param="rubric")
    scale = params.get("scale", 5)
    if not isinstance(scale, int) or isinstance(scale, bool) or not 2 <= scale <= 10:
        raise ScorerError(f"llm-rubric 'scale' must be a whole number 2..10, got {scale!r}", param="scale")
    threshold = params.get("threshold", 0.6)
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise ScorerError(f"llm-rubric 'threshold' must be in [0, 1], got {threshold!r}", param="threshold")
    return RubricJudge(JudgePanel.from_params(params), rubric.strip(), scale, float(threshold))
