"""The journal: per step execution key, an intent before the step runs and its output when it commits.

Outputs are stored once per content (sha256 of canonical JSON), capped in size, and redacted first:
secrets always, personal data unless the pipeline turns that off (`spec.journal.redact: false`). What a
step's successors see is the journaled value, on the first run as on a replay, so a resumed run reads
exactly what an uninterrupted one would have. A journal holds one row per step, never a snapshot of the
whole run's state, so it grows with the steps, not with their product.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from fleetplane.pipelines.outcomes import RunFailed
from fleetplane.pipelines.runs import Fence
from fleetplane.pipelines.sql import insert_ignore, insert_or_touch
from fleetplane.store.db import Store
from fleetplane.store.tables import (
    pipeline_approvals,
    pipeline_outputs,
    pipeline_runs,
    pipeline_steps,
    pipeline_trace,
)
from fleetplane.telemetry.content import ContentPolicy, redact_personal_data

_NO_CUT = 1 << 40  # the journal caps the whole output; single strings are not cut


class OutputTooLarge(RunFailed):
    def __init__(self, step_key: str, size: int, cap: int) -> None:
        self.size, self.cap = size, cap
        super().__init__(
            f"step {step_key}: its output is {size} bytes, over the journal's cap of {cap} bytes "
            "(spec.journal.maxOutputBytes); return a reference to the data instead of the data"
        )


def idempotency_key(run_id: str, step_id: str, index: int | None = None) -> str:
    """sha256 of run id + step id (+ loop index): the same on every retry and resume of the step, and
    never dependent on the skill's version, so a retry after a hot-swap still deduplicates."""
    material = f"{run_id}\x00{step_id}" + (f"\x00{index}" if index is not None else "")
    return hashlib.sha256(material.encode()).hexdigest()


def canonical_bytes(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def value_hash(value: Any) -> str:
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


@dataclass(frozen=True)
class Entry:
    step_key: str
    node: str
    kind: str
    state: str  # intent | committed | skipped | failed | paused
    attempt: int
    idempotency_key: str
    skill: str | None
    output_digest: str | None
    reconciled: bool
    error: str | None
    started_at: float
    finished_at: float | None


def _entry(row: Any) -> Entry:
    m = row._mapping
    return Entry(**{name: m[name] for name in Entry.__dataclass_fields__})


class Journal:
    def __init__(
        self, store: Store, fence: Fence, *, redact: bool = True, max_bytes: int = 1_048_576
    ) -> None:
        self._store = store
        self.fence = fence
        self.run_id = fence.run_id
        self.policy = ContentPolicy(redactor=redact_personal_data if redact else None, max_chars=_NO_CUT)
        self.max_bytes = max_bytes

    async def entries(self) -> dict[str, Entry]:
        query = select(pipeline_steps).where(pipeline_steps.c.run_id == self.run_id)
        async with self._store.engine.connect() as conn:
            return {r.step_key: _entry(r) for r in (await conn.execute(query)).all()}

    async def intent(
        self,
        step_key: str,
        *,
        node: str,
        kind: str,
        attempt: int,
        key: str,
        skill: str | None,
        input_hash: str | None,
        now: float,
    ) -> None:
        values = {
            "node": node,
            "kind": kind,
            "state": "intent",
            "attempt": attempt,
            "idempotency_key": key,
            "skill": skill,
            "input_hash": input_hash,
            "error": None,
            "started_at": now,
            "finished_at": None,
        }
        async with self._store.engine.begin() as conn:
            await self.fence.check(conn, now)
            if not await insert_ignore(
                conn,
                pipeline_steps,
                {"run_id": self.run_id, "step_key": step_key, "reconciled": False, **values},
            ):
                await conn.execute(self._row(step_key).values(**values))

    def prepare(self, step_key: str, output: Any) -> tuple[Any, bytes, str]:
        """The output as journaled (redacted), its canonical bytes and digest; refused past the cap."""
        cleaned = self.policy.clean(output)
        body = canonical_bytes(cleaned)
        if len(body) > self.max_bytes:
            raise OutputTooLarge(step_key, len(body), self.max_bytes)
        return cleaned, body, hashlib.sha256(body).hexdigest()

    async def commit(self, step_key: str, output: Any, *, now: float, reconciled: bool = False) -> Any:
        """Record the step's output; returns the value as journaled (what successors must read)."""
        cleaned, body, digest = self.prepare(step_key, output)
        async with self._store.engine.begin() as conn:
            await self.fence.check(conn, now)
            await self._store_output(conn, digest, cleaned, len(body), now)
            await conn.execute(
                self._row(step_key).values(
                    state="committed",
                    output_digest=digest,
                    reconciled=reconciled,
                    error=None,
                    finished_at=now,
                )
            )
        return cleaned

    async def store_output(self, output: Any, *, now: float) -> str:
        """Keep a value (the run's output) by its digest."""
        cleaned, body, digest = self.prepare("output", output)
        async with self._store.engine.begin() as conn:
            await self._store_output(conn, digest, cleaned, len(body), now)
        return digest

    async def _store_output(
        self, conn: AsyncConnection, digest: str, body: Any, size: int, now: float
    ) -> None:
        # Touched, not just ignored, when it exists: retention drops old outputs no journal refers to, and
        # this one is about to be referred to again by a step committing in this transaction.
        await insert_or_touch(
            conn,
            pipeline_outputs,
            {"digest": digest, "size": size, "body": body, "created_at": now},
            key="digest",
            touched="created_at",
        )

    async def record(
        self, step_key: str, state: str, *, node: str, kind: str, now: float, error: str | None = None
    ) -> None:
        """A row with no output: a skipped step (its condition was false), a failure, a pause."""
        values = {"state": state, "error": error, "finished_at": now}
        async with self._store.engine.begin() as conn:
            await self.fence.check(conn, now)
            inserted = await insert_ignore(
                conn,
                pipeline_steps,
                {
                    "run_id": self.run_id,
                    "step_key": step_key,
                    "node": node,
                    "kind": kind,
                    "attempt": 0,
                    "idempotency_key": idempotency_key(self.run_id, step_key),
                    "reconciled": False,
                    "started_at": now,
                    **values,
                },
            )
            if not inserted:
                await conn.execute(self._row(step_key).values(**values))

    async def output(self, digest: str) -> Any:
        return await read_output(self._store, digest)

    def _row(self, step_key: str) -> Any:
        return update(pipeline_steps).where(
            pipeline_steps.c.run_id == self.run_id, pipeline_steps.c.step_key == step_key
        )


async def read_output(store: Store, digest: str) -> Any:
    query = select(pipeline_outputs.c.body).where(pipeline_outputs.c.digest == digest)
    async with store.engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        raise LookupError(f"no journaled output {digest}")
    return row.body


async def prune(store: Store, *, before: float) -> int:
    """Retention: drop the journals, traces and approvals of runs that finished before `before`, then any
    output no journal refers to. The run rows stay (status, error, digests) for history."""
    finished = select(pipeline_runs.c.id).where(
        pipeline_runs.c.finished_at.is_not(None),
        pipeline_runs.c.finished_at < before,
        pipeline_runs.c.journal_pruned.is_(False),
    )
    async with store.engine.begin() as conn:
        ids = [r.id for r in (await conn.execute(finished)).all()]
        for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
            for table in (pipeline_steps, pipeline_trace, pipeline_approvals):
                await conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
            await conn.execute(
                update(pipeline_runs).where(pipeline_runs.c.id.in_(chunk)).values(journal_pruned=True)
            )
        referenced = select(pipeline_steps.c.output_digest).where(pipeline_steps.c.output_digest.is_not(None))
        kept = select(pipeline_runs.c.output_digest).where(pipeline_runs.c.output_digest.is_not(None))
        await conn.execute(
            delete(pipeline_outputs).where(
                # Only old ones: a running step writes its output and its journal row in one transaction,
                # but a run's own output is written a moment before the run row names it.
                pipeline_outputs.c.created_at < before,
                pipeline_outputs.c.digest.not_in(referenced),
                pipeline_outputs.c.digest.not_in(kept),
            )
        )
    return len(ids)
