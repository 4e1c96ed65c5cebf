"""The human review queue: items enter (flagged, judge-uncertain, or the random audit slice) once per span;
a reviewer takes the next one (assignment), labels it per dimension with a value in [0, 1] and a comment.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from fleetplane.store.db import Store
from fleetplane.store.evals_online import review_items, review_labels

SOURCES = ("flagged", "uncertain", "audit")
STATUSES = ("open", "assigned", "labelled")


# The widths of review_labels.dimension and .reviewer (and review_items.assignee): a longer value would be
# an error from Postgres, not a clear refusal.
MAX_DIMENSION = 253
MAX_REVIEWER = 255


class ReviewError(ValueError):
    """A bad request to the queue: an unknown item, status or source, a label out of range."""


@dataclass(frozen=True)
class ReviewItem:
    id: str
    trace_id: str
    span_id: str
    source: str
    reasons: list[str]
    subject: dict[str, Any]
    status: str
    assignee: str | None
    created_at: float
    assigned_at: float | None
    labelled_at: float | None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Label:
    item_id: str
    dimension: str
    reviewer: str
    value: float
    comment: str | None
    created_at: float


class ReviewQueue:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def enqueue(
        self,
        trace_id: str,
        span_id: str,
        *,
        source: str,
        reasons: Sequence[str],
        subject: Mapping[str, Any],
        now: float,
    ) -> str | None:
        """Put an item in the queue; None when the span is queued already."""
        if source not in SOURCES:
            raise ReviewError(f"review source {source!r} is not one of: {', '.join(SOURCES)}")
        item_id = uuid.uuid4().hex
        row = {
            "id": item_id,
            "trace_id": trace_id,
            "span_id": span_id,
            "source": source,
            "reasons": sorted(set(reasons)),
            "subject": dict(subject),
            "status": "open",
            "assignee": None,
            "created_at": now,
            "assigned_at": None,
            "labelled_at": None,
        }
        try:
            async with self.store.engine.begin() as conn:
                await conn.execute(insert(review_items).values(**row))
        except IntegrityError:
            return None
        return item_id

    async def items(self, *, status: str | None = None, limit: int = 50) -> list[ReviewItem]:
        if status is not None and status not in STATUSES:
            raise ReviewError(f"status {status!r} is not one of: {', '.join(STATUSES)}")
        query = select(review_items).order_by(review_items.c.created_at, review_items.c.id).limit(limit)
        if status is not None:
            query = query.where(review_items.c.status == status)
        async with self.store.engine.connect() as conn:
            return [_item(r) for r in (await conn.execute(query)).all()]

    async def get(self, item_id: str) -> ReviewItem | None:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(review_items).where(review_items.c.id == item_id))).first()
        return _item(row) if row is not None else None

    async def next(self, reviewer: str, now: float) -> ReviewItem | None:
        """The item this reviewer holds, else the oldest open one, assigned to them (two reviewers asking at
        once never get the same item: the assignment is a conditional update, retried on a lost race)."""
        _check_reviewer(reviewer)
        for _ in range(20):
            async with self.store.engine.begin() as conn:
                held = (
                    await conn.execute(
                        select(review_items)
                        .where(review_items.c.status == "assigned", review_items.c.assignee == reviewer)
                        .order_by(review_items.c.created_at)
                        .limit(1)
                    )
                ).first()
                if held is not None:
                    return _item(held)
                candidate = (
                    await conn.execute(
                        select(review_items.c.id)
                        .where(review_items.c.status == "open")
                        .order_by(review_items.c.created_at, review_items.c.id)
                        .limit(1)
                    )
                ).first()
                if candidate is None:
                    return None
                taken = await conn.execute(
                    update(review_items)
                    .where(review_items.c.id == candidate.id, review_items.c.status == "open")
                    .values(status="assigned", assignee=reviewer, assigned_at=now)
                )
            if taken.rowcount == 1:
                return await self.get(candidate.id)
        return None

    async def label(
        self, item_id: str, reviewer: str, labels: Mapping[str, float], *, comment: str | None, now: float
    ) -> ReviewItem:
        """Record a reviewer's labels (dimension -> value in [0, 1]); a reviewer labelling again replaces
        their earlier label of that dimension."""
        _check_reviewer(reviewer)
        if not labels:
            raise ReviewError("no labels given; expected dimension=value pairs with values in [0, 1]")
        for dimension, value in labels.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not dimension or not number or not 0 <= float(value) <= 1:
                raise ReviewError(f"label {dimension}={value!r}: expected a value in [0, 1]")
            if len(dimension) > MAX_DIMENSION:
                raise ReviewError(
                    f"label {dimension[:40]}...: a dimension name is at most {MAX_DIMENSION} characters"
                )
        item = await self.get(item_id)
        if item is None:
            raise ReviewError(f"no review item {item_id!r}")
        async with self.store.engine.begin() as conn:
            for dimension, value in labels.items():
                await conn.execute(
                    review_labels.delete().where(
                        review_labels.c.item_id == item_id,
                        review_labels.c.dimension == dimension,
                        review_labels.c.reviewer == reviewer,
                    )
                )
                await conn.execute(
                    insert(review_labels).values(
                        item_id=item_id,
                        dimension=dimension,
                        reviewer=reviewer,
                        value=float(value),
                        comment=comment,
                        created_at=now,
                    )
                )
            await conn.execute(
                update(review_items)
                .where(review_items.c.id == item_id)
                .values(status="labelled", labelled_at=now, assignee=item.assignee or reviewer)
            )
        labelled = await self.get(item_id)
        assert labelled is not None
        return labelled

    async def labels(self, item_id: str | None = None) -> list[Label]:
        query = select(review_labels).order_by(review_labels.c.created_at)
        if item_id is not None:
            query = query.where(review_labels.c.item_id == item_id)
        async with self.store.engine.connect() as conn:
            return [Label(**dict(r._mapping)) for r in (await conn.execute(query)).all()]


def _check_reviewer(reviewer: str) -> None:
    if not reviewer.strip():
        raise ReviewError("a reviewer name is needed")
    if len(reviewer) > MAX_REVIEWER:
        raise ReviewError(f"a reviewer name is at most {MAX_REVIEWER} characters")


def _item(row: Any) -> ReviewItem:
    return ReviewItem(**dict(row._mapping))
