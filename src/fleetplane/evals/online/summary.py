"""Online evals as they accumulate: per group (model, agent, rule, team or prompt version) and scorer, how
many items were scored, their mean and pass rate, how many were flagged or judged, and what scoring cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, select

from fleetplane.store.db import Store
from fleetplane.store.evals_online import eval_online_items, eval_online_scores, review_items

items = eval_online_items
scores = eval_online_scores
GROUPS = {
    "model": items.c.model,
    "agent": items.c.agent,
    "rule": items.c.rule,
    "team": items.c.team,
    "prompt_version": items.c.prompt_version,
}


@dataclass(frozen=True)
class OnlineRow:
    group: str | None
    scorer: str
    dimension: str
    tier: str
    items: int
    mean: float
    pass_rate: float | None  # among scores that decide pass/fail
    cost_usd: float  # of scoring, all items
    latency_ms: float  # mean per score

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class OnlineTotals:
    items: int
    sampled: int
    flagged: int
    judged: int
    judge_failed: int
    judge_refused: int
    in_review: int


async def summarize(store: Store, *, by: str = "model", since: float | None = None) -> list[OnlineRow]:
    if by not in GROUPS:
        raise ValueError(f"cannot group by {by!r}; choose from: {', '.join(GROUPS)}")
    group = GROUPS[by]
    passed = func.sum(case((scores.c.passed.is_(True), 1), else_=0))
    decided = func.sum(case((scores.c.passed.isnot(None), 1), else_=0))
    query = (
        select(
            group.label("grp"),
            scores.c.scorer,
            scores.c.dimension,
            scores.c.tier,
            func.count().label("n"),
            func.avg(scores.c.value).label("mean"),
            passed.label("passed"),
            decided.label("decided"),
            func.sum(scores.c.cost_usd).label("cost"),
            func.avg(scores.c.latency_ms).label("latency"),
        )
        .select_from(
            scores.join(
                items, and_(items.c.trace_id == scores.c.trace_id, items.c.span_id == scores.c.span_id)
            )
        )
        .group_by(group, scores.c.scorer, scores.c.dimension, scores.c.tier)
        .order_by(group, scores.c.dimension, scores.c.tier, scores.c.scorer)
    )
    if since is not None:
        query = query.where(items.c.start_ns >= int(since * 1e9))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        OnlineRow(
            r.grp,
            r.scorer,
            r.dimension,
            r.tier,
            int(r.n),
            float(r.mean),
            int(r.passed) / int(r.decided) if r.decided else None,
            float(r.cost or 0),
            float(r.latency or 0),
        )
        for r in rows
    ]


async def totals(store: Store, *, since: float | None = None) -> OnlineTotals:
    status = items.c.judge_status
    query = select(
        func.count(),
        func.sum(case((items.c.sampled.is_(True), 1), else_=0)),
        func.sum(case((status == "done", 1), else_=0)),
        func.sum(case((status == "failed", 1), else_=0)),
        func.sum(case((status == "refused", 1), else_=0)),
    ).where(*_since(since))
    async with store.engine.connect() as conn:
        n, sampled, judged, failed, refused = (await conn.execute(query)).one()
        # Flags are a JSON list: counted here, the same way on both databases.
        flag_rows = (await conn.execute(select(items.c.flags).where(*_since(since)))).all()
        reviewing = (await conn.execute(select(func.count()).select_from(review_items))).scalar()
    flagged = sum(1 for (flags,) in flag_rows if flags)
    return OnlineTotals(
        int(n or 0),
        int(sampled or 0),
        flagged,
        int(judged or 0),
        int(failed or 0),
        int(refused or 0),
        int(reviewing or 0),
    )


def _since(since: float | None) -> list[Any]:
    return [items.c.start_ns >= int(since * 1e9)] if since is not None else []
