"""The engine: start a run (pin its plan and skill lock), and take one turn on it — walk the stages in
order, replaying what the journal holds, until it finishes, pauses, needs a person, or fails.

A turn holds the run's lease; every journal write is fenced by it. The turn is one `invoke_workflow`
span: the first turn's span is the run's root, and later turns (a resume, another worker after a crash)
are children of that root, so a run is one trace however many turns it takes.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from fleetplane.manifests.pipeline import SKILL_REF
from fleetplane.pipelines.approvals import Approvals
from fleetplane.pipelines.audit import AuditSink
from fleetplane.pipelines.context import Deps, RunContext
from fleetplane.pipelines.journal import Journal
from fleetplane.pipelines.mcp import McpTools
from fleetplane.pipelines.outcomes import NeedsAttention, Paused, RunFailed, StartError
from fleetplane.pipelines.plan import Plan, digest_of
from fleetplane.pipelines.reasoning import Reasoning
from fleetplane.pipelines.runs import LeaseLost, RunRecord, RunStore
from fleetplane.pipelines.stages import context_stage, route_stage, sink_stage
from fleetplane.pipelines.steps import StepError
from fleetplane.pipelines.walk import output_of, walk_steps
from fleetplane.telemetry.propagation import extract_headers


async def start_run(
    deps: Deps,
    plan: Plan,
    input: Any,
    *,
    trigger: str = "manual",
    dedupe_key: str | None = None,
    traceparent: str | None = None,
    lock_file: Any = None,
) -> tuple[RunRecord, bool]:
    """A new pending run with its plan and skill lock pinned, or the run that already has `dedupe_key`.
    `lock_file` (a skills lock) pins exact versions; skills it does not name resolve to what serves now."""
    runs = RunStore(deps.store)
    existing = await runs.find_duplicate(plan.pipeline, dedupe_key)
    if existing is not None:
        return existing, False
    schema = plan.spec.trigger.input
    if schema is not None:
        for error in sorted(Draft202012Validator(schema).iter_errors(input), key=str)[:1]:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise StartError(f"input of pipeline {plan.pipeline}: at {where}: {error.message}")
    catalog = deps.catalogs(plan.spec.policy.require_signed)
    run_id = RunStore.new_id()
    lock: dict[str, dict[str, str]] = {}
    for reference in plan.skills:
        match = SKILL_REF.match(reference)
        assert match is not None  # the kind checked every reference
        try:
            ref = await catalog.resolve(
                match["name"], match["constraint"] or "*", run_id=run_id, lock=lock_file
            )
        except Exception as exc:
            raise StartError(f"pipeline {plan.pipeline}: skill {reference}: {exc}") from exc
        lock[reference] = {"name": ref.name, "version": ref.version, "digest": ref.digest}
    now = deps.clock.now()
    run, created = await runs.create(
        run_id, plan, input, lock, trigger=trigger, now=now, dedupe_key=dedupe_key, traceparent=traceparent
    )
    if created:
        details = {"plan": plan.digest, "lock": digest_of(lock), "trigger": trigger}
        await AuditSink(deps.store).once("run.start", f"{plan.pipeline}/{run.id}", details, now=now)
    return run, created


async def take_turn(deps: Deps, run_id: str, owner: str) -> RunRecord | None:
    """Run `run_id` as far as it goes under this worker's lease; None if another worker holds it."""
    runs = RunStore(deps.store)
    fence = await runs.acquire(run_id, owner, now=deps.clock.now(), ttl=deps.lease_ttl)
    if fence is None:
        return None
    run = await runs.get(run_id)
    assert run is not None
    try:
        plan = await runs.plan(run.plan_digest)
    except (LookupError, ValueError) as exc:  # the pinned plan is gone or was altered: never run another
        await runs.settle(fence, "failed", now=deps.clock.now(), error=str(exc))
        return await runs.get(run_id)
    spec = plan.spec
    journal = Journal(deps.store, fence, redact=spec.journal.redact, max_bytes=spec.journal.max_output_bytes)
    ctx = RunContext(
        deps=deps,
        run=run,
        plan=plan,
        fence=fence,
        journal=journal,
        reasoning=Reasoning(deps.store, run.id, redact=spec.journal.redact),
        approvals=Approvals(deps.store),
        audit=AuditSink(deps.store),
        catalog=deps.catalogs(spec.policy.require_signed),
        entries=await journal.entries(),
        mcp=McpTools(deps.store, plan.pipeline, spec.mcp, deps.http),
    )
    try:
        with deps.telemetry.invoke_workflow_span(plan.pipeline, parent=_parent(run)) as span:
            span.set_attributes({"fleetplane.run.id": run.id, "fleetplane.plan.digest": plan.digest})
            if run.trace_id is None:
                context = span.span.get_span_context()
                if context.is_valid:
                    trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
                    await runs.set_trace(fence, trace_id, span_id, now=deps.clock.now())
            await _settle(ctx, runs)
    except LeaseLost:
        return await runs.get(run_id)  # cancelled, or another worker took over: it writes, not us
    return await runs.get(run_id)


async def _settle(ctx: RunContext, runs: RunStore) -> None:
    """Run the stages and record how the turn ended."""
    subject = f"{ctx.plan.pipeline}/{ctx.id}"
    try:
        output = await _stages(ctx)
    except Paused as paused:
        await runs.settle(
            ctx.fence,
            "waiting_approval",
            now=ctx.now(),
            attention={"gate": paused.gate, "approval": paused.approval_id},
        )
        await _decided_meanwhile(ctx, runs, paused)
        return
    except NeedsAttention as attention:
        await runs.settle(
            ctx.fence, "needs_attention", now=ctx.now(), error=str(attention), attention=attention.attention
        )
        return
    except LeaseLost:
        raise
    except Exception as exc:  # a failed step or check, or a fault of ours: the run fails, it never hangs
        error = str(exc) if isinstance(exc, RunFailed | StepError) else f"{type(exc).__name__}: {exc}"
        await runs.settle(ctx.fence, "failed", now=ctx.now(), error=error)
        await ctx.audit.once("run.finish", subject, {"status": "failed", "error": error}, now=ctx.now())
        return
    digest = await ctx.journal.store_output(output, now=ctx.now())
    await runs.settle(ctx.fence, "succeeded", now=ctx.now(), output_digest=digest)
    await ctx.audit.once("run.finish", subject, {"status": "succeeded", "output": digest}, now=ctx.now())


async def _stages(ctx: RunContext) -> Any:
    run = ctx.run
    scope: dict[str, Any] = {
        "input": run.input,
        "run": {"id": run.id, "pipeline": ctx.plan.pipeline, "trigger": run.trigger},
        "context": {},
        "route": None,
        "steps": {},
    }
    await context_stage(ctx, scope)
    if ctx.plan.spec.route is not None:
        scope["route"] = await route_stage(ctx, ctx.plan.spec.route, scope)
    await walk_steps(ctx, scope)
    output = await output_of(ctx, scope)
    scope["output"] = output
    await sink_stage(ctx, scope)
    return output


async def _decided_meanwhile(ctx: RunContext, runs: RunStore, paused: Paused) -> None:
    """A decision made while this turn was still settling found the run busy; apply it now."""
    found = await ctx.approvals.get(paused.approval_id)
    if found is None or found.status == "pending":
        return
    if found.status == "approved":
        await runs.requeue(ctx.id, now=ctx.now(), statuses=("waiting_approval",))
    else:
        error = f"approval {found.gate} {found.status} by {found.decided_by}" + (
            f": {found.reason}" if found.reason else ""
        )
        await runs.finish_unleased(ctx.id, "failed", now=ctx.now(), error=error)


def _parent(run: RunRecord) -> Context | None:
    """Later turns continue the run's trace under its root span; the first joins the trigger's caller."""
    if run.trace_id and run.root_span_id:
        root = SpanContext(
            int(run.trace_id, 16),
            int(run.root_span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        return trace.set_span_in_context(NonRecordingSpan(root))
    if run.traceparent:
        return extract_headers({"traceparent": run.traceparent})
    return Context()
