"""Runs and their scores in the store: one output row per case x epoch, one result row per dimension.

`RunRepository` writes a run as it goes (a crashed run keeps what it scored, marked `running`) and reads
runs back as `Observation`s for the gate, as outputs for `compare`, and as summaries for `history`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update

from fleetplane.evals.gate import Observation
from fleetplane.store.db import Store
from fleetplane.store.evals_runs import eval_outputs, eval_results, eval_runs


@dataclass(frozen=True)
class Answer:
    """What a target returned for one case in one epoch."""

    output: str
    structured: Any = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    finish_reason: str | None = None
    trace_id: str | None = None
    error: str | None = None  # the call failed; every dimension scores 0 and fails
    deployment: str | None = None  # which deployment of a model group served it ("provider/model")


@dataclass(frozen=True)
class DimensionResult:
    dimension: str
    value: float
    passed: bool | None
    scores: list[dict[str, Any]]  # per scorer: type, value, passed, explanation, cost_usd, latency_ms, flags
    scoring_cost_usd: float


@dataclass(frozen=True)
class Run:
    id: str
    suite: str
    suite_digest: str
    target: str
    status: str
    trigger: str
    epochs: int
    seed: int
    cases: int
    started_at: float
    finished_at: float | None = None
    summary: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class RunNotFound(LookupError):
    pass


class RunRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, run: Run) -> None:
        async with self._store.engine.begin() as conn:
            await conn.execute(eval_runs.insert().values(**vars(run)))

    async def record(
        self,
        run_id: str,
        case_id: str,
        epoch: int,
        fixture: str | None,
        answer: Answer,
        results: Sequence[DimensionResult],
    ) -> None:
        """One case x epoch: the answer and every dimension's result, in one transaction."""
        output = {
            "run_id": run_id,
            "case_id": case_id,
            "epoch": epoch,
            "output": answer.output,
            "error": answer.error,
            "model": answer.model,
            "trace_id": answer.trace_id,
            "latency_ms": answer.latency_ms,
            "cost_usd": answer.cost_usd,
            "input_tokens": answer.input_tokens,
            "output_tokens": answer.output_tokens,
        }
        rows = [
            {
                "run_id": run_id,
                "case_id": case_id,
                "epoch": epoch,
                "dimension": r.dimension,
                "value": r.value,
                "passed": r.passed,
                "fixture": fixture,
                "scores": r.scores,
                "scoring_cost_usd": r.scoring_cost_usd,
            }
            for r in results
        ]
        async with self._store.engine.begin() as conn:
            await conn.execute(eval_outputs.insert().values(**output))
            if rows:
                await conn.execute(eval_results.insert(), rows)

    async def finish(
        self,
        run_id: str,
        *,
        status: str,
        finished_at: float,
        summary: dict[str, Any] | None,
        error: str | None = None,
    ) -> None:
        async with self._store.engine.begin() as conn:
            await conn.execute(
                update(eval_runs)
                .where(eval_runs.c.id == run_id)
                .values(status=status, finished_at=finished_at, summary=summary, error=error)
            )

    async def get(self, ref: str) -> Run:
        """A run by id or by a unique prefix of at least 4 characters; raises `RunNotFound`."""
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(select(eval_runs).where(eval_runs.c.id == ref))).all()
            if not rows and len(ref) >= 4:
                like = select(eval_runs).where(eval_runs.c.id.startswith(ref, autoescape=True)).limit(2)
                rows = (await conn.execute(like)).all()
        if len(rows) != 1:
            problem = "is ambiguous" if rows else "does not exist"
            raise RunNotFound(f"eval run {ref!r} {problem}; `fleetplane eval history SUITE` lists runs")
        return Run(**dict(rows[0]._mapping))

    async def runs(self, suite: str, *, limit: int = 50) -> list[Run]:
        """The suite's runs, oldest first (the last `limit`)."""
        query = (
            select(eval_runs)
            .where(eval_runs.c.suite == suite)
            .order_by(eval_runs.c.started_at.desc())
            .limit(limit)
        )
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Run(**dict(r._mapping)) for r in reversed(rows)]

    async def last_started(self, suite: str, *, trigger: str | None = None) -> float | None:
        """When the suite's latest run (of `trigger`, when given) started."""
        query = select(func.max(eval_runs.c.started_at)).where(eval_runs.c.suite == suite)
        if trigger is not None:
            query = query.where(eval_runs.c.trigger == trigger)
        async with self._store.engine.connect() as conn:
            value = (await conn.execute(query)).scalar()
        return None if value is None else float(value)

    async def observations(self, run_id: str) -> list[Observation]:
        query = select(eval_results).where(eval_results.c.run_id == run_id)
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Observation(r.dimension, r.case_id, float(r.value), r.passed, int(r.epoch), r.fixture)
            for r in sorted(rows, key=lambda r: (r.dimension, r.case_id, r.epoch))
        ]

    async def outputs(self, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
        query = select(eval_outputs).where(eval_outputs.c.run_id == run_id)
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {(r.case_id, int(r.epoch)): dict(r._mapping) for r in rows}
