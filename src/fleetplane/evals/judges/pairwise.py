"""`llm-pairwise`: a judge compares the answer with another one (the sample's reference: a baseline's
answer) — twice, once in each order, because judges favour a position (Wang et al., ACL 2024).

Each judge's two verdicts are read from the answer's side: win 1, tie 0.5, loss 0. When the orders
disagree the item is flagged `order-disagreement` (it goes to human review) and that judge counts 0.5.
A panel's judges are pooled by the mean. Parameters: `judge`/`judges`, `criteria`, `allowSameFamily`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetplane.evals.judges.client import JudgeError, JudgeReply
from fleetplane.evals.judges.panel import JudgePanel, as_text, details
from fleetplane.evals.scoring import Sample, Score, ScorerError, Tier, register_scorer

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"winner": {"enum": ["A", "B", "tie"]}, "reason": {"type": "string", "maxLength": 300}},
    "required": ["winner", "reason"],
}
SYSTEM = (
    "You are an impartial evaluator comparing two answers to the same request. {criteria} Ignore the order "
    "the answers are shown in and their length. Call record_verdict with winner A, B or tie."
)
DEFAULT_CRITERIA = "Which answer serves the user's request better: correct, complete, safe and to the point?"


@dataclass
class PairwiseJudge:
    panel: JudgePanel
    criteria: str
    type: str = "llm-pairwise"
    tier: Tier = "judge"

    async def score(self, sample: Sample) -> Score:
        if not sample.reference_text:
            raise JudgeError("llm-pairwise needs the other answer as the case's reference")
        checks = self.panel.check(sample)
        request = as_text(sample.input)
        results = await self.panel.each(lambda model: self._both_orders(model, request, sample))
        values: dict[str, float] = {}
        disagreeing: list[str] = []
        replies: list[JudgeReply] = []
        for model, (first, second, value, agree) in zip(self.panel.models, results, strict=True):
            replies += [first, second]
            values[model] = value
            if not agree:
                disagreeing.append(model)
        pooled = sum(values.values()) / len(values)
        # Per judge, its verdict with the answer shown first (as A) and second (as B).
        verdicts = {
            f"{r.model}/{'answer-first' if i % 2 == 0 else 'answer-second'}": r.arguments.get("winner")
            for i, r in enumerate(replies)
        }
        return Score(
            value=pooled,
            passed=None if disagreeing else pooled > 0.5,
            explanation=f"orders disagree for {', '.join(disagreeing)}" if disagreeing else "orders agree",
            cost_usd=sum(r.cost_usd for r in replies),
            latency_ms=max(r.latency_ms for r in replies),
            flags=("order-disagreement",) if disagreeing else (),
            details={
                **details(checks, replies),
                "values": values,
                "verdicts": verdicts,
                "order_disagreement": disagreeing,
            },
        )

    async def _both_orders(
        self, model: str, request: str, sample: Sample
    ) -> tuple[JudgeReply, JudgeReply, float, bool]:
        answer, other = sample.output, sample.reference_text
        first = await self._ask(model, request, answer, other)  # the answer shown as A
        second = await self._ask(model, request, other, answer)  # the answer shown as B
        as_first = {"A": 1.0, "tie": 0.5, "B": 0.0}[self._winner(first)]
        as_second = {"B": 1.0, "tie": 0.5, "A": 0.0}[self._winner(second)]
        agree = as_first == as_second
        return first, second, as_first if agree else 0.5, agree

    async def _ask(self, model: str, request: str, a: str, b: str) -> JudgeReply:
        messages = [
            {"role": "system", "content": SYSTEM.format(criteria=self.criteria)},
            {"role": "user", "content": f"REQUEST:\n{request}\n\nANSWER A:\n{a}\n\nANSWER B:\n{b}"},
        ]
        return await self.panel.client.verdict(model, messages, SCHEMA, kind="pairwise")

    @staticmethod
    def _winner(reply: JudgeReply) -> str:
        winner = reply.arguments.get("winner")
        if winner not in ("A", "B", "tie"):
            raise JudgeError(f"judge {reply.model!r} named winner {winner!r}; expected A, B or tie")
        return str(winner)


@register_scorer(
    "llm-pairwise", "judge", "An LLM judge compares the answer with the reference, in both orders."
)
def llm_pairwise(params: Mapping[str, Any]) -> PairwiseJudge:
    criteria = params.get("criteria", DEFAULT_CRITERIA)
    if not isinstance(criteria, str) or not criteria.strip():
        raise ScorerError("llm-pairwise 'criteria' must be a non-empty text", param="criteria")
    return PairwiseJudge(JudgePanel.from_params(params), criteria.strip())
