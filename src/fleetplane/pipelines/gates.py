"""Approval gates as the engine meets them: ask once, pause while pending, go on with the approved
arguments, end the run on a rejection.

The arguments a gate asks about are bound by hash: if a resume renders different arguments than the ones
a person saw (something upstream changed), the gate refuses rather than run what nobody approved. An
edited approval runs the edited arguments.
"""

from __future__ import annotations

from typing import Any

from fleetplane.pipelines.context import RunContext
from fleetplane.pipelines.journal import value_hash
from fleetplane.pipelines.outcomes import Paused, RunFailed


async def gate(
    ctx: RunContext,
    name: str,
    *,
    step_key: str,
    kind: str,
    arguments: Any,
    timeout: float | None = None,
    on_timeout: str = "reject",
    tool: str | None = None,
) -> Any:
    """The arguments to run with once approved; raises `Paused` while waiting, `RunFailed` if refused."""
    found = await ctx.approvals.for_gate(ctx.id, name)
    if found is None:
        found = await ctx.approvals.request(
            run_id=ctx.id,
            pipeline=ctx.plan.pipeline,
            gate=name,
            step_key=step_key,
            kind=kind,
            arguments=arguments,
            now=ctx.now(),
            timeout=timeout,
            on_timeout=on_timeout,
            tool=tool,
        )
        await ctx.note(
            f"gate:{name}", "approval", {"gate": name, "kind": kind, "status": "requested"}, step_key
        )
    if found.status == "pending":
        raise Paused(name, found.id)
    if found.status != "approved":
        why = f": {found.reason}" if found.reason else ""
        raise RunFailed(f"approval {name} was {found.status} by {found.decided_by}{why}")
    if found.arguments_hash != value_hash(arguments):
        raise RunFailed(
            f"approval {name}: the arguments now differ from the ones approved "
            f"(hash {value_hash(arguments)[:12]}, approved {found.arguments_hash[:12]}); ask again"
        )
    data = {
        "gate": name,
        "status": "approved",
        "by": found.decided_by,
        "edited": found.approved_hash != found.arguments_hash,
    }
    await ctx.note(f"gate:{name}:decided", "approval", data, step_key)
    return found.approved
