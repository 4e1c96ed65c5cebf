"""Approval gates: a step, a tool call or a guardrail verdict that waits for a person.

A gate is requested with the arguments the step would run with, bound by their hash. A person approves
(optionally with edited arguments, bound by their own hash), or rejects with a reason. An approval
unlocks exactly the arguments it was given: if a resume renders different ones (something upstream
changed), the engine refuses to run. Approving makes the run pending again (a worker resumes it from its
journal, so nothing before the gate runs again); rejecting ends the run with the reason. A gate past its
timeout is decided by its `onTimeout` (reject by default). Every decision goes to the audit log.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from fleetplane.pipelines.audit import AuditSink
from fleetplane.pipelines.journal import value_hash
from fleetplane.pipelines.runs import RunStore
from fleetplane.pipelines.sql import insert_ignore
from fleetplane.store.db import Store
from fleetplane.store.tables import pipeline_approvals

STATUSES = ("pending", "approved", "rejected", "expired")


class ApprovalError(Exception):
    """A decision that cannot be made (unknown id, already decided)."""


class ApprovalInvalid(ApprovalError):
    """A decision that is malformed: edited arguments that are not a JSON object."""


@dataclass(frozen=True)
class ApprovalRecord:
    id: str
    run_id: str
    pipeline: str
    gate: str
    step_key: str
    kind: str  # step | tool | guardrail
    tool: str | None
    status: str  # pending | approved | rejected | expired
    arguments: Any
    arguments_hash: str
    approved: Any
    approved_hash: str | None
    reason: str | None
    requested_at: float
    expires_at: float | None
    on_timeout: str
    decided_at: float | None
    decided_by: str | None


def _record(row: Any) -> ApprovalRecord:
    m = row._mapping
    return ApprovalRecord(**{name: m[name] for name in ApprovalRecord.__dataclass_fields__})


class Approvals:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._audit = AuditSink(store)

    async def request(
        self,
        *,
        run_id: str,
        pipeline: str,
        gate: str,
        step_key: str,
        kind: str,
        arguments: Any,
        now: float,
        timeout: float | None,
        on_timeout: str = "reject",
        tool: str | None = None,
    ) -> ApprovalRecord:
        """The gate's approval, asking for it (once) if it was never asked."""
        async with self._store.engine.begin() as conn:
            inserted = await insert_ignore(
                conn,
                pipeline_approvals,
                {
                    "id": uuid.uuid4().hex,
                    "run_id": run_id,
                    "pipeline": pipeline,
                    "gate": gate,
                    "step_key": step_key,
                    "kind": kind,
                    "tool": tool,
                    "status": "pending",
                    "arguments": arguments,
                    "arguments_hash": value_hash(arguments),
                    "requested_at": now,
                    "expires_at": now + timeout if timeout else None,
                    "on_timeout": on_timeout,
                },
            )
        found = await self.for_gate(run_id, gate)
        assert found is not None
        if inserted:
            details = {"gate": gate, "step": step_key, "kind": kind, "tool": tool, "approval": found.id}
            await self._audit.once("approval.request", f"{pipeline}/{run_id}/{gate}", details, now=now)
        return found

    async def for_gate(self, run_id: str, gate: str) -> ApprovalRecord | None:
        query = select(pipeline_approvals).where(
            pipeline_approvals.c.run_id == run_id, pipeline_approvals.c.gate == gate
        )
        async with self._store.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _record(row) if row is not None else None

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        query = select(pipeline_approvals).where(pipeline_approvals.c.id == approval_id)
        async with self._store.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _record(row) if row is not None else None

    async def query(
        self, *, status: Sequence[str] | None = ("pending",), run_id: str | None = None
    ) -> list[ApprovalRecord]:
        query = select(pipeline_approvals).order_by(
            pipeline_approvals.c.requested_at, pipeline_approvals.c.id
        )
        if status:
            query = query.where(pipeline_approvals.c.status.in_(list(status)))
        if run_id is not None:
            query = query.where(pipeline_approvals.c.run_id == run_id)
        async with self._store.engine.connect() as conn:
            return [_record(r) for r in (await conn.execute(query)).all()]

    async def decide(
        self,
        approval_id: str,
        *,
        approve: bool,
        actor: str,
        now: float,
        reason: str | None = None,
        edited: Any = None,
    ) -> ApprovalRecord:
        """Approve (with `edited` arguments, if given) or reject a pending gate, and move its run on."""
        if approve and edited is not None and not isinstance(edited, dict):
            # What a gate guards is always called with a mapping; anything else would be approved here and
            # then fail the run at the step, losing the approval.
            raise ApprovalInvalid(
                f"approval {approval_id}: the edited arguments must be a JSON object, "
                f"not {type(edited).__name__}"
            )
        found = await self.get(approval_id)
        if found is None:
            raise ApprovalError(f"no approval {approval_id}")
        if found.status != "pending":
            raise ApprovalError(f"approval {approval_id} is already {found.status}")
        if approve:
            arguments = found.arguments if edited is None else edited
            values: dict[str, Any] = {"status": "approved", "approved": arguments}
            values["approved_hash"] = value_hash(arguments)
        else:
            values = {"status": "rejected"}
        values.update(reason=reason, decided_at=now, decided_by=actor)
        async with self._store.engine.begin() as conn:
            moved = await conn.execute(
                update(pipeline_approvals)
                .where(pipeline_approvals.c.id == approval_id, pipeline_approvals.c.status == "pending")
                .values(**values)
            )
        if not moved.rowcount:
            raise ApprovalError(f"approval {approval_id} was decided by someone else meanwhile")
        decided = await self.get(approval_id)
        assert decided is not None
        await self._after(decided, actor=actor, now=now, edited=approve and edited is not None)
        return decided

    async def expire(self, *, now: float) -> list[ApprovalRecord]:
        """Decide every pending gate past its timeout by its `onTimeout`."""
        query = select(pipeline_approvals).where(
            pipeline_approvals.c.status == "pending", pipeline_approvals.c.expires_at < now
        )
        async with self._store.engine.connect() as conn:
            due = [_record(r) for r in (await conn.execute(query)).all()]
        done = []
        for gate in due:
            approve = gate.on_timeout == "approve"
            values: dict[str, Any] = {"status": "approved" if approve else "expired", "decided_at": now}
            values.update(decided_by="timeout", reason="the approval timed out")
            if approve:
                values.update(approved=gate.arguments, approved_hash=gate.arguments_hash)
            async with self._store.engine.begin() as conn:
                moved = await conn.execute(
                    update(pipeline_approvals)
                    .where(pipeline_approvals.c.id == gate.id, pipeline_approvals.c.status == "pending")
                    .values(**values)
                )
            if moved.rowcount:
                decided = await self.get(gate.id)
                assert decided is not None
                await self._after(decided, actor="timeout", now=now, edited=False)
                done.append(decided)
        return done

    async def _after(self, gate: ApprovalRecord, *, actor: str, now: float, edited: bool) -> None:
        details = {"gate": gate.gate, "status": gate.status, "reason": gate.reason, "edited": edited}
        details["approved_hash"] = gate.approved_hash
        subject = f"{gate.pipeline}/{gate.run_id}/{gate.gate}"
        await self._audit.once(f"approval.{gate.status}", subject, details, now=now, actor=actor)
        runs = RunStore(self._store)
        if gate.status == "approved":
            await runs.requeue(gate.run_id, now=now, statuses=("waiting_approval",))
        else:
            why = "rejected" if gate.status == "rejected" else "timed out"
            error = f"approval {gate.gate} {why} by {actor}" + (f": {gate.reason}" if gate.reason else "")
            if gate.status == "expired":
                error = f"approval {gate.gate} timed out"
            await runs.finish_unleased(gate.run_id, "failed", now=now, error=error)
