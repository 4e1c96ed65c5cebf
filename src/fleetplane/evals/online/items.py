"""The online evaluator's rows: items claimed once (insert or skip, so replicas never double-score), their
scores, their judge status, and user feedback on answers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from fleetplane.store.db import Store
from fleetplane.store.evals_online import eval_feedback, eval_online_items, eval_online_scores

items = eval_online_items
scores = eval_online_scores

NEGATIVE_FEEDBACK = 0.5  # a rating below this (in [0, 1]) flags the answer


@dataclass(frozen=True)
class ItemRow:
    trace_id: str
    span_id: str
    start_ns: int
    rule: str | None
    model: str | None
    agent: str | None
    team: str | None
    prompt_version: str | None
    input_digest: str | None
    sample_u: float
    sampled: bool
    flags: list[str]
    judge_status: str
    judge_error: str | None
    subject: dict[str, Any]


@dataclass(frozen=True)
class ScoreRow:
    trace_id: str
    span_id: str
    scorer: str
    dimension: str
    tier: str
    value: float
    passed: bool | None
    explanation: str
    flags: list[str]
    cost_usd: float
    latency_ms: float
    details: dict[str, Any]
    scored_at: float


class OnlineItems:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _insert(self) -> Any:
        return pg_insert if self.store.dialect == "postgresql" else sqlite_insert

    async def claim(self, rows: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
        """Insert the items no one has taken yet; returns the (trace_id, span_id) this call took."""
        if not rows:
            return set()
        statement = (
            self._insert()(items)
            .values(list(rows))
            .on_conflict_do_nothing(index_elements=["trace_id", "span_id"])
            .returning(items.c.trace_id, items.c.span_id)
        )
        async with self.store.engine.begin() as conn:
            taken = (await conn.execute(statement)).all()
        return {(r.trace_id, r.span_id) for r in taken}

    async def newest_start_ns(self) -> int | None:
        async with self.store.engine.connect() as conn:
            value = (await conn.execute(select(func.max(items.c.start_ns)))).scalar()
        return int(value) if value is not None else None

    async def update(self, trace_id: str, span_id: str, **values: Any) -> None:
        async with self.store.engine.begin() as conn:
            await conn.execute(
                update(items).where(items.c.trace_id == trace_id, items.c.span_id == span_id).values(**values)
            )

    async def add_scores(self, rows: Iterable[ScoreRow]) -> None:
        values = [r.__dict__ for r in rows]
        if values:
            async with self.store.engine.begin() as conn:
                await conn.execute(insert(scores), values)

    async def take_due(self, trace_id: str, span_id: str) -> bool:
        """Move one item from due to judging; False when another evaluator took it first."""
        async with self.store.engine.begin() as conn:
            taken = await conn.execute(
                update(items)
                .where(
                    items.c.trace_id == trace_id, items.c.span_id == span_id, items.c.judge_status == "due"
                )
                .values(judge_status="judging")
            )
        return bool(taken.rowcount == 1)

    async def requeue_judging(self) -> int:
        async with self.store.engine.begin() as conn:
            moved = await conn.execute(
                update(items).where(items.c.judge_status == "judging").values(judge_status="due")
            )
        return int(moved.rowcount or 0)

    async def due(self, limit: int) -> list[ItemRow]:
        async with self.store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(items).where(items.c.judge_status == "due").order_by(items.c.start_ns).limit(limit)
                )
            ).all()
        return [_item(r) for r in rows]

    async def get(self, trace_id: str, span_id: str) -> ItemRow | None:
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(items).where(items.c.trace_id == trace_id, items.c.span_id == span_id)
                )
            ).first()
        return _item(row) if row is not None else None

    async def all(self, *, limit: int = 1000) -> list[ItemRow]:
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(items).order_by(items.c.start_ns).limit(limit))).all()
        return [_item(r) for r in rows]

    async def scores(self, *, trace_id: str | None = None, tier: str | None = None) -> list[ScoreRow]:
        query = select(scores).order_by(scores.c.id)
        if trace_id is not None:
            query = query.where(scores.c.trace_id == trace_id)
        if tier is not None:
            query = query.where(scores.c.tier == tier)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ScoreRow(**{k: v for k, v in r._mapping.items() if k != "id"}) for r in rows]

    # ---- user feedback ---------------------------------------------------------------------------

    async def add_feedback(self, trace_id: str, value: float, comment: str | None, now: float) -> bool:
        """Store a rating; a negative one sends the trace's items to the judge (again). Returns whether an
        item already taken was flagged (otherwise the evaluator flags it when it takes it)."""
        if not 0 <= value <= 1:
            raise ValueError(f"feedback value must be in [0, 1], got {value}")
        async with self.store.engine.begin() as conn:
            await conn.execute(
                insert(eval_feedback).values(trace_id=trace_id, value=value, comment=comment, created_at=now)
            )
            if value >= NEGATIVE_FEEDBACK:
                return False
            taken = (await conn.execute(select(items).where(items.c.trace_id == trace_id))).all()
            for row in taken:
                flags = sorted({*row.flags, "user-feedback"})
                await conn.execute(
                    update(items)
                    .where(items.c.trace_id == row.trace_id, items.c.span_id == row.span_id)
                    .values(flags=flags, judge_status="due" if row.judge_status != "refused" else "refused")
                )
        return bool(taken)

    async def negative_feedback(self, trace_ids: Iterable[str]) -> set[str]:
        ids = list(set(trace_ids))
        if not ids:
            return set()
        async with self.store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(eval_feedback.c.trace_id).where(
                        eval_feedback.c.trace_id.in_(ids), eval_feedback.c.value < NEGATIVE_FEEDBACK
                    )
                )
            ).all()
        return {r.trace_id for r in rows}


def _item(row: Any) -> ItemRow:
    values = dict(row._mapping)
    values.pop("seen_at", None)
    return ItemRow(**values)
