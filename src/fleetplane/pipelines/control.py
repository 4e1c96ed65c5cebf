"""What people do to runs — resume, cancel, settle a step whose outcome was unknown, look inside — shared by
the CLI and the HTTP API so both say the same things in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from fleetplane.pipelines.audit import AuditSink
from fleetplane.pipelines.journal import canonical_bytes, read_output, value_hash
from fleetplane.pipelines.reasoning import Record, records
from fleetplane.pipelines.runs import RESUMABLE, RunRecord, RunStore
from fleetplane.pipelines.sql import insert_or_touch
from fleetplane.store.db import Store
from fleetplane.store.tables import pipeline_approvals, pipeline_outputs, pipeline_steps


class ControlError(Exception):
    """A request about a run that cannot be honoured; the message says why (and `status` the HTTP code)."""

    def __init__(self, message: str, status: int = 409) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class RunView:
    run: RunRecord
    steps: list[dict[str, Any]]
    reasoning: list[Record]
    approvals: list[dict[str, Any]]
    output: Any


async def get_run(store: Store, run_id: str) -> RunRecord:
    run = await RunStore(store).get(run_id)
    if run is None:
        raise ControlError(f"no run {run_id}", 404)
    return run


async def show(store: Store, run_id: str) -> RunView:
    run = await get_run(store, run_id)
    query = (
        select(pipeline_steps).where(pipeline_steps.c.run_id == run_id).order_by(pipeline_steps.c.started_at)
    )
    gates = select(pipeline_approvals).where(pipeline_approvals.c.run_id == run_id)
    async with store.engine.connect() as conn:
        steps = [_plain(r) for r in (await conn.execute(query)).all()]
        approvals = [_plain(r) for r in (await conn.execute(gates)).all()]
    output = await read_output(store, run.output_digest) if run.output_digest else None
    return RunView(run, steps, await records(store, run_id), approvals, output)


def _plain(row: Any) -> dict[str, Any]:
    # Column names come back as a str subclass, which JSON encoders refuse as keys.
    return {str(key): value for key, value in row._mapping.items()}


async def resume(
    store: Store,
    run_id: str,
    *,
    now: float,
    actor: str,
    step: str | None = None,
    output: Any = None,
    rerun: bool = False,
) -> RunRecord:
    """Make a stopped run pending again. For a run that needs attention, a person says what happened to
    the step first: `output` (it happened; this is its result) or `rerun` (it did not; run it)."""
    run = await get_run(store, run_id)
    if run.status not in RESUMABLE:
        raise ControlError(f"run {run_id} is {run.status}; only {', '.join(sorted(RESUMABLE))} runs resume")
    if run.status == "waiting_approval":
        raise ControlError(
            f"run {run_id} waits for an approval; decide it (fleetplane approvals approve|reject)"
        )
    if run.status != "needs_attention" and (step is not None or output is not None or rerun):
        # A decision about a step is only asked of a run stopped on that step; taking it silently would
        # leave the person believing they settled something.
        raise ControlError(
            f"run {run_id} is {run.status}: --step, --output and --rerun are for a run that needs attention "
            "about a step; resume it without them",
            400,
        )
    if run.status == "needs_attention":
        wanted = (run.attention or {}).get("step")
        if step is None or (output is None) == (not rerun):
            raise ControlError(
                f"run {run_id} needs a decision about step {wanted}: give --step {wanted} and either "
                "--output JSON (it happened) or --rerun (it did not)",
                400,
            )
        if step != wanted:
            raise ControlError(f"run {run_id} waits on step {wanted}, not {step}", 400)
        await _settle_step(store, run_id, step, output if not rerun else None, now=now)
        details = {"step": step, "decision": "rerun" if rerun else "happened", "output": value_hash(output)}
        await AuditSink(store).log.append(
            "run.attention", f"{run.pipeline}/{run_id}", actor=actor, details=details, at=now
        )
    if not await RunStore(store).requeue(run_id, now=now):
        raise ControlError(f"run {run_id} changed meanwhile; look again")
    return await get_run(store, run_id)


async def _settle_step(store: Store, run_id: str, step: str, output: Any, *, now: float) -> None:
    row = (pipeline_steps.c.run_id == run_id, pipeline_steps.c.step_key == step)
    async with store.engine.begin() as conn:
        if output is None:
            await conn.execute(
                update(pipeline_steps).where(*row).values(state="failed", error="rerun by a person")
            )
            return
        body = canonical_bytes(output)
        digest = value_hash(output)
        values = {"digest": digest, "size": len(body), "body": output, "created_at": now}
        await insert_or_touch(conn, pipeline_outputs, values, key="digest", touched="created_at")
        await conn.execute(
            update(pipeline_steps)
            .where(*row)
            .values(state="committed", output_digest=digest, reconciled=True, error=None, finished_at=now)
        )


async def cancel(
    store: Store, run_id: str, *, now: float, actor: str, reason: str | None = None
) -> RunRecord:
    run = await get_run(store, run_id)
    if run.finished:
        raise ControlError(f"run {run_id} already {run.status}")
    why = f"cancelled by {actor}" + (f": {reason}" if reason else "")
    cancelled = await RunStore(store).cancel(run_id, now=now, reason=why)
    await AuditSink(store).once(
        "run.cancel", f"{run.pipeline}/{run_id}", {"reason": why}, now=now, actor=actor
    )
    assert cancelled is not None
    return cancelled
