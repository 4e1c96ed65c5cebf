"""Run rows: what a run pinned at start, its status, its trace, and its worker lease.

A lease is (owner, until, epoch). A worker takes a run whose lease is free or expired and bumps the epoch;
every write it makes afterwards is fenced by that epoch (`Fence.check` in the same transaction), so a
worker that lost its lease — paused, partitioned, or presumed dead — can write nothing more, and two
workers never run the same step. Times are wall-clock seconds from the injected clock, since workers in
different processes compare them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from fleetplane.pipelines.plan import Plan
from fleetplane.pipelines.sql import insert_ignore
from fleetplane.store.db import Store
from fleetplane.store.tables import pipeline_plans, pipeline_runs

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
RUNNABLE = frozenset({"pending", "running"})  # what a worker may take (running: when its lease expired)
RESUMABLE = frozenset({"waiting_approval", "needs_attention", "failed"})
STATUSES = TERMINAL | RUNNABLE | RESUMABLE  # every status a run can be in


class LeaseLost(Exception):
    """Another worker took the run (or it was cancelled): this worker must stop writing."""


@dataclass(frozen=True)
class RunRecord:
    id: str
    pipeline: str
    plan_digest: str
    lock: dict[str, dict[str, str]]
    input: Any
    status: str
    trigger: str
    dedupe_key: str | None
    traceparent: str | None
    trace_id: str | None
    root_span_id: str | None
    lease_owner: str | None
    lease_until: float | None
    lease_epoch: int
    created_at: float
    updated_at: float
    finished_at: float | None
    error: str | None
    attention: dict[str, Any] | None
    output_digest: str | None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def _record(row: Any) -> RunRecord:
    m = row._mapping
    return RunRecord(**{name: m[name] for name in RunRecord.__dataclass_fields__})


@dataclass(frozen=True)
class Fence:
    """The lease a worker holds; `check` fails the surrounding transaction if it no longer does."""

    run_id: str
    owner: str
    epoch: int

    async def check(self, conn: AsyncConnection, now: float) -> None:
        moved = await conn.execute(
            update(pipeline_runs)
            .where(
                pipeline_runs.c.id == self.run_id,
                pipeline_runs.c.lease_owner == self.owner,
                pipeline_runs.c.lease_epoch == self.epoch,
            )
            .values(updated_at=now)
        )
        if not moved.rowcount:
            raise LeaseLost(f"run {self.run_id}: the lease of {self.owner} (epoch {self.epoch}) is gone")


class RunStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    async def find_duplicate(self, pipeline: str, dedupe_key: str | None) -> RunRecord | None:
        if dedupe_key is None:
            return None
        query = select(pipeline_runs).where(
            pipeline_runs.c.pipeline == pipeline, pipeline_runs.c.dedupe_key == dedupe_key
        )
        async with self._store.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _record(row) if row is not None else None

    async def create(
        self,
        run_id: str,
        plan: Plan,
        input: Any,
        lock: dict[str, dict[str, str]],
        *,
        trigger: str,
        now: float,
        dedupe_key: str | None = None,
        traceparent: str | None = None,
    ) -> tuple[RunRecord, bool]:
        """The new run, or the one that already has this dedupe key (and False)."""
        try:
            async with self._store.engine.begin() as conn:
                await insert_ignore(
                    conn,
                    pipeline_plans,
                    {
                        "digest": plan.digest,
                        "pipeline": plan.pipeline,
                        "plan": plan.document(),
                        "created_at": now,
                    },
                )
                await conn.execute(
                    pipeline_runs.insert().values(
                        id=run_id,
                        pipeline=plan.pipeline,
                        plan_digest=plan.digest,
                        lock=lock,
                        input=input,
                        status="pending",
                        trigger=trigger,
                        dedupe_key=dedupe_key,
                        traceparent=traceparent,
                        lease_epoch=0,
                        created_at=now,
                        updated_at=now,
                        journal_pruned=False,
                    )
                )
        except IntegrityError:
            existing = await self.find_duplicate(plan.pipeline, dedupe_key)
            if existing is None:
                raise
            return existing, False
        run = await self.get(run_id)
        assert run is not None
        return run, True

    async def get(self, run_id: str) -> RunRecord | None:
        async with self._store.engine.connect() as conn:
            row = (await conn.execute(select(pipeline_runs).where(pipeline_runs.c.id == run_id))).first()
        return _record(row) if row is not None else None

    async def plan(self, digest: str) -> Plan:
        async with self._store.engine.connect() as conn:
            row = (
                await conn.execute(select(pipeline_plans.c.plan).where(pipeline_plans.c.digest == digest))
            ).first()
        if row is None:
            raise LookupError(f"no stored plan {digest}")
        plan = Plan.from_document(row.plan)
        if plan.digest != digest:
            raise ValueError(f"the stored plan {digest} was altered (its content hashes to {plan.digest})")
        return plan

    async def query(
        self, *, pipeline: str | None = None, status: Sequence[str] | None = None, limit: int = 50
    ) -> list[RunRecord]:
        query = select(pipeline_runs).order_by(pipeline_runs.c.created_at.desc(), pipeline_runs.c.id)
        if pipeline is not None:
            query = query.where(pipeline_runs.c.pipeline == pipeline)
        if status:
            query = query.where(pipeline_runs.c.status.in_(list(status)))
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit))).all()
        return [_record(r) for r in rows]

    async def claimable(self, now: float, limit: int = 10) -> list[str]:
        """Runs a worker may take: pending, or running under a lease that has expired (its worker died)."""
        query = (
            select(pipeline_runs.c.id)
            .where(
                pipeline_runs.c.status.in_(list(RUNNABLE)),
                or_(pipeline_runs.c.lease_owner.is_(None), pipeline_runs.c.lease_until < now),
            )
            .order_by(pipeline_runs.c.created_at)
            .limit(limit)
        )
        async with self._store.engine.connect() as conn:
            return [r.id for r in (await conn.execute(query)).all()]

    async def acquire(self, run_id: str, owner: str, *, now: float, ttl: float) -> Fence | None:
        """Take the run's lease if it is free, expired or already ours; None when another worker holds it."""
        free = or_(
            pipeline_runs.c.lease_owner.is_(None),
            pipeline_runs.c.lease_until < now,
            pipeline_runs.c.lease_owner == owner,
        )
        async with self._store.engine.begin() as conn:
            moved = await conn.execute(
                update(pipeline_runs)
                .where(pipeline_runs.c.id == run_id, pipeline_runs.c.status.in_(list(RUNNABLE)), free)
                .values(
                    lease_owner=owner,
                    lease_until=now + ttl,
                    lease_epoch=pipeline_runs.c.lease_epoch + 1,
                    status="running",
                    updated_at=now,
                )
            )
            if not moved.rowcount:
                return None
            epoch = (
                await conn.execute(select(pipeline_runs.c.lease_epoch).where(pipeline_runs.c.id == run_id))
            ).scalar_one()
        return Fence(run_id, owner, int(epoch))

    async def renew(self, fence: Fence, *, now: float, ttl: float) -> bool:
        async with self._store.engine.begin() as conn:
            moved = await conn.execute(
                update(pipeline_runs)
                .where(
                    pipeline_runs.c.id == fence.run_id,
                    pipeline_runs.c.lease_owner == fence.owner,
                    pipeline_runs.c.lease_epoch == fence.epoch,
                )
                .values(lease_until=now + ttl)
            )
        return bool(moved.rowcount)

    async def settle(self, fence: Fence, status: str, *, now: float, **values: Any) -> None:
        """End this worker's turn: a new status (and error, attention, output...) and the lease let go."""
        finished = {"finished_at": now} if status in TERMINAL else {}
        async with self._store.engine.begin() as conn:
            await fence.check(conn, now)
            await conn.execute(
                update(pipeline_runs)
                .where(pipeline_runs.c.id == fence.run_id)
                .values(
                    status=status, lease_owner=None, lease_until=None, updated_at=now, **finished, **values
                )
            )

    async def set_trace(self, fence: Fence, trace_id: str, span_id: str, *, now: float) -> None:
        """The run's trace, once: every later segment (a resume, another worker) continues it."""
        async with self._store.engine.begin() as conn:
            await fence.check(conn, now)
            await conn.execute(
                update(pipeline_runs)
                .where(pipeline_runs.c.id == fence.run_id, pipeline_runs.c.trace_id.is_(None))
                .values(trace_id=trace_id, root_span_id=span_id)
            )

    async def cancel(self, run_id: str, *, now: float, reason: str) -> RunRecord | None:
        """Cancel a run that has not finished; the epoch moves on so a worker running it stops writing."""
        async with self._store.engine.begin() as conn:
            await conn.execute(
                update(pipeline_runs)
                .where(pipeline_runs.c.id == run_id, pipeline_runs.c.status.not_in(list(TERMINAL)))
                .values(
                    status="cancelled",
                    error=reason,
                    lease_owner=None,
                    lease_until=None,
                    lease_epoch=pipeline_runs.c.lease_epoch + 1,
                    finished_at=now,
                    updated_at=now,
                )
            )
        return await self.get(run_id)

    async def requeue(self, run_id: str, *, now: float, statuses: Sequence[str] = tuple(RESUMABLE)) -> bool:
        """Make a paused, stuck or failed run pending again (a worker resumes it from its journal)."""
        async with self._store.engine.begin() as conn:
            moved = await conn.execute(
                update(pipeline_runs)
                .where(pipeline_runs.c.id == run_id, pipeline_runs.c.status.in_(list(statuses)))
                .values(status="pending", error=None, attention=None, finished_at=None, updated_at=now)
            )
        return bool(moved.rowcount)

    async def finish_unleased(self, run_id: str, status: str, *, now: float, error: str) -> bool:
        """End a run no worker holds (a rejected or expired approval ends a waiting run)."""
        async with self._store.engine.begin() as conn:
            moved = await conn.execute(
                update(pipeline_runs)
                .where(
                    pipeline_runs.c.id == run_id,
                    and_(
                        pipeline_runs.c.status.not_in(list(TERMINAL)), pipeline_runs.c.lease_owner.is_(None)
                    ),
                )
                .values(status=status, error=error, finished_at=now, updated_at=now)
            )
        return bool(moved.rowcount)
