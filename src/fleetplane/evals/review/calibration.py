"""Calibration: how often each judge and cheap scorer agrees with the humans who labelled the same items.

For every labelled item and dimension, the reviewers' mean label is the reference; each machine score on
that item and dimension agrees when both sit on the same side of `threshold` (pass/fail agreement, the
rate reported), and their absolute difference is averaged too. Distilled and cheap scorers inherit their
teachers' biases, so these rates are what says whether a scorer's flags can be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from fleetplane.store.db import Store
from fleetplane.store.evals_online import eval_online_scores, review_items, review_labels


@dataclass(frozen=True)
class Agreement:
    scorer: str
    tier: str
    dimension: str
    items: int  # labelled items the scorer also scored
    agreed: int
    mean_abs_diff: float

    @property
    def rate(self) -> float:
        return self.agreed / self.items if self.items else 0.0

    def as_json(self) -> dict[str, object]:
        return {**self.__dict__, "rate": self.rate}


async def agreement(store: Store, *, threshold: float = 0.5) -> list[Agreement]:
    async with store.engine.connect() as conn:
        labels = (
            await conn.execute(
                select(
                    review_items.c.trace_id,
                    review_items.c.span_id,
                    review_labels.c.dimension,
                    review_labels.c.value,
                ).join(review_items, review_items.c.id == review_labels.c.item_id)
            )
        ).all()
        human: dict[tuple[str, str, str], list[float]] = {}
        for row in labels:
            human.setdefault((row.trace_id, row.span_id, row.dimension), []).append(row.value)
        if not human:
            return []
        traces = sorted({key[0] for key in human})
        machine = (
            await conn.execute(select(eval_online_scores).where(eval_online_scores.c.trace_id.in_(traces)))
        ).all()
    tally: dict[tuple[str, str, str], list[tuple[bool, float]]] = {}
    for score in machine:
        reference = human.get((score.trace_id, score.span_id, score.dimension))
        if reference is None or score.tier == "human":
            continue
        mean = sum(reference) / len(reference)
        agreed = (score.value >= threshold) == (mean >= threshold)
        tally.setdefault((score.scorer, score.tier, score.dimension), []).append(
            (agreed, abs(score.value - mean))
        )
    return [
        Agreement(
            scorer,
            tier,
            dimension,
            len(pairs),
            sum(a for a, _ in pairs),
            sum(d for _, d in pairs) / len(pairs),
        )
        for (scorer, tier, dimension), pairs in sorted(tally.items())
    ]
