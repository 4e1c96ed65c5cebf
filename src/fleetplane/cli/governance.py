"""`fleetplane approvals` and `fleetplane audit`: the governance side of pipelines. A person lists the
gates runs wait at, approves one (optionally with edited arguments, bound by their hash) or rejects it with
a reason; `audit verify` checks the hash chain of every publish, promotion, approval and block.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from fleetplane.cli.common import FAILED, DatabaseURL, console, fail, format_time, now, with_store
from fleetplane.cli.ids import resolve_id
from fleetplane.cli.jsonopt import parse_json
from fleetplane.pipelines.approvals import ApprovalError, ApprovalRecord, Approvals
from fleetplane.store.audit import AuditLog
from fleetplane.store.db import Store
from fleetplane.store.tables import pipeline_approvals

approvals_app = typer.Typer(
    name="approvals", help="Approval gates: list, approve (optionally edited), reject.", no_args_is_help=True
)
audit_app = typer.Typer(name="audit", help="The hash-chained audit log.", no_args_is_help=True)

Actor = Annotated[
    str, typer.Option("--actor", envvar="USER", help="Who decides (recorded in the audit log).")
]


@approvals_app.command("list")
def list_approvals(
    all_: Annotated[bool, typer.Option("--all", help="Decided ones too.")] = False,
    run_id: Annotated[str | None, typer.Option("--run")] = None,
    database_url: DatabaseURL = None,
) -> None:
    """Pending approvals (oldest first), with the arguments each would run with."""

    async def work(store: Store) -> list[ApprovalRecord]:
        return await Approvals(store).query(status=None if all_ else ("pending",), run_id=run_id)

    table = Table("approval", "run", "pipeline", "gate", "kind", "status", "arguments", "expires")
    for gate in with_store(database_url, work):
        table.add_row(
            gate.id,
            gate.run_id,
            gate.pipeline,
            gate.gate,
            gate.kind,
            gate.status,
            orjson.dumps(gate.arguments).decode()[:80],
            format_time(gate.expires_at),
        )
    console.print(table)


def _decide(
    approval_id: str, approve: bool, actor: str, reason: str | None, edited: Any, url: str | None
) -> None:
    async def work(store: Store) -> ApprovalRecord:
        try:
            full = await resolve_id(store, pipeline_approvals.c.id, approval_id, "approval")
            return await Approvals(store).decide(
                full, approve=approve, actor=actor, now=now(), reason=reason, edited=edited
            )
        except ApprovalError as exc:
            fail(str(exc))

    gate = with_store(url, work)
    console.print(f"approval {gate.id}: {gate.status} by {gate.decided_by}", markup=False)
    if gate.status == "approved":
        console.print(
            f"run {gate.run_id} resumes: `fleetplane runs resume {gate.run_id}` or a server's worker"
        )


@approvals_app.command("approve")
def approve(
    approval_id: Annotated[str, typer.Argument(help="The approval id, or a unique prefix of it.")],
    edit: Annotated[
        str | None, typer.Option("--edit", help="Approve these arguments instead (JSON or @file).")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    actor: Actor = "cli",
    database_url: DatabaseURL = None,
) -> None:
    """Approve a gate; the run resumes with the (possibly edited) arguments, bound by their hash."""
    edited = parse_json("--edit", edit) if edit is not None else None
    _decide(approval_id, True, actor, reason, edited, database_url)


@approvals_app.command("reject")
def reject(
    approval_id: Annotated[str, typer.Argument(help="The approval's id (or a unique prefix of it).")],
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded on the run and in the audit log.")],
    actor: Actor = "cli",
    database_url: DatabaseURL = None,
) -> None:
    """Reject a gate; the run ends as failed with the reason."""
    _decide(approval_id, False, actor, reason, None, database_url)


@audit_app.command("verify")
def verify(database_url: DatabaseURL = None) -> None:
    """Check the audit log's hash chain; any edited or removed entry is named (exit 1)."""

    async def work(store: Store) -> Any:
        return await AuditLog(store).verify()

    result = with_store(database_url, work)
    if not result.ok:
        console.print(f"audit log: NOT intact after {result.entries} entries: {result.problem}", markup=False)
        raise typer.Exit(FAILED)
    console.print(f"audit log: intact ({result.entries} entries)")
