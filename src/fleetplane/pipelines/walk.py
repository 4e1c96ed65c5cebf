"""The execute and validate stages: each step in dependency order — its condition, its loop, its
approval gate, its guardrails before and after — then the run's output and the run-level checks.

A step's successors read `steps.<id>.output` as journaled (a loop's output is the list of its items'
outputs, in order); a skipped step reads as `{output: null, skipped: true}`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fleetplane.manifests.expression_templates import render
from fleetplane.manifests.expressions import ExprError
from fleetplane.manifests.pipeline import ROUTED, Step
from fleetplane.pipelines.checks import RetryStep, guard
from fleetplane.pipelines.context import RunContext
from fleetplane.pipelines.gates import gate
from fleetplane.pipelines.outcomes import NeedsAttention, Paused, RunFailed
from fleetplane.pipelines.runs import LeaseLost
from fleetplane.pipelines.stages import condition
from fleetplane.pipelines.steps import StepError, rerunnable, run_skill


async def walk_steps(ctx: RunContext, scope: dict[str, Any]) -> None:
    for step_id in ctx.plan.order:
        step = ctx.plan.step(step_id)
        if step.when is not None and not await condition(ctx, f"{step_id}:when", step.when, scope, step_id):
            if step_id not in ctx.entries:
                await ctx.journal.record(step_id, "skipped", node=step_id, kind="step", now=ctx.now())
            scope["steps"][step_id] = {"output": None, "skipped": True}
            continue
        if step.foreach is None:
            output: Any = await _one(ctx, step, step_id, scope, None)
        else:
            items = _render(step.foreach, scope, f"{step_id}.foreach")
            if not isinstance(items, list):
                raise RunFailed(f"step {step_id}: foreach gave {type(items).__name__}, not a list")
            limit = asyncio.Semaphore(step.parallel)

            async def item(
                index: int, value: Any, step: Step = step, limit: asyncio.Semaphore = limit
            ) -> Any:
                async with limit:
                    inner = {**scope, "item": value, "index": index}
                    return await _one(ctx, step, f"{step.id}[{index}]", inner, index)

            output = _settled(
                await asyncio.gather(*(item(i, v) for i, v in enumerate(items)), return_exceptions=True)
            )
        scope["steps"][step_id] = {"output": output, "skipped": False}


def _settled(results: list[Any]) -> list[Any]:
    """A loop's outputs once every item has ended: items are never cancelled half-way (an effect in
    flight must reach its journal entry). If any item failed, the run fails; else if any needs a person,
    or waits at a gate, the run does that; the items that finished stay committed for the resume."""
    errors = [r for r in results if isinstance(r, BaseException)]
    for kind in (
        asyncio.CancelledError,
        LeaseLost,
        RunFailed,
        StepError,
        NeedsAttention,
        Paused,
        BaseException,
    ):
        for error in errors:
            if isinstance(error, kind):
                raise error
    return results


async def _one(ctx: RunContext, step: Step, key: str, scope: dict[str, Any], index: int | None) -> Any:
    args = _render(step.input, scope, f"{key}.input")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise RunFailed(f"step {key}: its input renders to {type(args).__name__}, not a mapping")
    approval = step.approval
    if approval is not None:
        wanted = approval.required or (
            approval.when is not None and await condition(ctx, f"{key}:approval", approval.when, scope, key)
        )
        if wanted:
            args = await gate(
                ctx,
                key,
                step_key=key,
                kind="step",
                arguments=args,
                timeout=approval.timeout,
                on_timeout=approval.on_timeout,
            )
    await guard(ctx, ctx.plan.checks(step.id, "before"), args, {**scope, "args": args}, where=key)
    lock_key = step.skill if step.skill != ROUTED else scope["route"]["skill"]
    attempt = 1
    # A guardrail's `retry` runs the step again only when its effect allows; otherwise it blocks.
    may_retry = any(c.on_fail == "retry" for c in ctx.plan.checks(step.id)) and await rerunnable(
        ctx, lock_key
    )
    while True:
        output = await run_skill(ctx, key, lock_key=lock_key, args=args, step_id=step.id, index=index)
        checked = {**scope, "args": args, "output": output}
        try:
            await guard(
                ctx,
                ctx.plan.checks(step.id, "after"),
                output,
                checked,
                where=key,
                attempt=attempt,
                may_retry=may_retry,
            )
        except RetryStep as retry:
            # The output failed its check: mark it so the step runs again instead of replaying it.
            await ctx.journal.record(
                key, "failed", node=step.id, kind="step", now=ctx.now(), error=str(retry)
            )
            ctx.entries[key] = (await ctx.journal.entries())[key]  # the attempt count goes on
            attempt += 1
            continue
        return output


async def output_of(ctx: RunContext, scope: dict[str, Any]) -> Any:
    spec = ctx.plan.spec
    if spec.output is not None:
        output = _render(spec.output, scope, "output")
    else:
        output = scope["steps"][ctx.plan.order[-1]]["output"]
    await guard(ctx, ctx.plan.checks(None, "after"), output, {**scope, "output": output}, where="output")
    return output


def _render(template: Any, scope: dict[str, Any], where: str) -> Any:
    try:
        return render(template, scope)
    except ExprError as exc:
        raise RunFailed(f"{where}: {exc}") from None
    except TypeError as exc:
        raise RunFailed(f"{where}: {exc}") from None
