"""One durable skill invocation: replay it, re-run it, reconcile it, or ask a person — by its journal entry
and its skill's declared effects — then retry it per the skill's policy.

| journal says | effect | what happens |
|---|---|---|
| committed | any | the journaled output is returned; the skill does not run |
| intent (interrupted) | pure, read, idempotent write | runs again with the same idempotency key |
| intent (interrupted) | at-most-once | its reconcile hook says if it happened, else a person decides |
| nothing, failed, paused | any | runs |

The idempotency key is sha256(run id, step id, loop index): the same on every attempt, resume and
version, so a write retried after a hot-swap still deduplicates downstream. Errors whose kind the policy
lists (`timeout`, `transient`) are retried with exponential back-off; any other fails fast. An
at-most-once step that timed out has an unknown outcome, so it is not retried blindly either.
"""

from __future__ import annotations

from typing import Any

from fleetplane.pipelines.context import RunContext
from fleetplane.pipelines.faults import crash_point
from fleetplane.pipelines.journal import Entry, idempotency_key, value_hash
from fleetplane.pipelines.outcomes import NeedsAttention, Paused, RunFailed
from fleetplane.pipelines.skillapi import LoadedSkillLike, error_kind, make_context, make_ref
from fleetplane.pipelines.tools import ToolBox
from fleetplane.telemetry.propagation import inject_headers


class StepError(Exception):
    """A step that failed for good; `kind` is the skill error's kind."""

    def __init__(self, step_key: str, kind: str, message: str) -> None:
        self.step_key, self.kind = step_key, kind
        super().__init__(message)


def _may_rerun(skill: LoadedSkillLike) -> bool:
    effects = skill.contract.effects
    return effects.kind in ("pure", "read") or (effects.idempotent and not effects.at_most_once)


async def load(ctx: RunContext, pinned: dict[str, str], step_key: str) -> LoadedSkillLike:
    """The pinned skill, verified by the catalog (a tampered, unsigned under `requireSigned`, untrusted
    or revoked skill fails the run closed, with the catalog's reason)."""
    try:
        return await ctx.catalog.load(make_ref(pinned))
    except Exception as exc:
        raise RunFailed(f"step {step_key}: cannot load {pinned['name']}@{pinned['version']}: {exc}") from exc


async def rerunnable(ctx: RunContext, lock_key: str) -> bool:
    """Whether the skill pinned under `lock_key` may run twice (a guardrail's `retry` needs that)."""
    pinned = ctx.run.lock.get(lock_key)
    return pinned is not None and _may_rerun(await load(ctx, pinned, lock_key))


async def run_skill(
    ctx: RunContext,
    step_key: str,
    *,
    lock_key: str,
    args: dict[str, Any],
    step_id: str,
    index: int | None = None,
    kind: str = "step",
) -> Any:
    """The step's output: replayed from the journal, or from running its pinned skill now."""
    entry = ctx.entries.get(step_key)
    if entry is not None and entry.state == "committed" and entry.output_digest is not None:
        ctx.replayed.append(step_key)
        return await ctx.journal.output(entry.output_digest)
    pinned = ctx.run.lock.get(lock_key)
    if pinned is None:
        raise RunFailed(f"step {step_key}: {lock_key} is not in the run's skill lock")
    label = f"{pinned['name']}@{pinned['version']}"
    skill = await load(ctx, pinned, step_key)
    key = idempotency_key(ctx.id, step_id, index)
    if entry is not None and entry.state == "intent":
        reconciled = await _interrupted(ctx, skill, entry, args, key, label)
        if reconciled is not None:
            return reconciled[0]
    return await _attempts(ctx, skill, step_key, args, key, label, kind, entry.attempt if entry else 0)


async def _interrupted(
    ctx: RunContext, skill: LoadedSkillLike, entry: Entry, args: dict[str, Any], key: str, label: str
) -> tuple[Any] | None:
    """After a crash mid-step: (output,) when reconciled, None to run the step (again)."""
    step_key = entry.step_key
    if _may_rerun(skill):
        await ctx.note(
            f"{step_key}:interrupted:{entry.attempt}",
            "recovery",
            {"decision": "rerun", "effect": skill.contract.effects.kind},
            step_key,
        )
        return None
    if skill.contract.effects.reconcile is None:
        message = (
            f"step {step_key} ({label}, at-most-once) was interrupted and its outcome is unknown; "
            "it has no reconcile hook, so a person must decide: "
            f"`fleetplane runs resume {ctx.id} --step {step_key} --output JSON` if it happened, "
            f"`--rerun` if it did not"
        )
        raise NeedsAttention(message, {"step": step_key, "skill": label, "reason": "unknown outcome"})
    context = make_context(
        run_id=ctx.id,
        step_id=step_key,
        attempt=entry.attempt,
        idempotency_key=key,
        traceparent=inject_headers().get("traceparent"),
    )
    outcome = await skill.reconcile(args, context)
    decision = "happened" if outcome is not None else "did not happen"
    await ctx.note(f"{step_key}:reconcile:{entry.attempt}", "recovery", {"decision": decision}, step_key)
    if outcome is None:
        return None
    return (await ctx.journal.commit(step_key, outcome, now=ctx.now(), reconciled=True),)


async def _attempts(
    ctx: RunContext,
    skill: LoadedSkillLike,
    step_key: str,
    args: dict[str, Any],
    key: str,
    label: str,
    kind: str,
    attempt: int,
) -> Any:
    policy = skill.contract.retry
    at_most_once = not _may_rerun(skill)
    deps = ctx.deps
    tries = 0  # attempts in this turn; the journal's attempt number goes on across turns
    while True:
        attempt += 1
        tries += 1
        await ctx.journal.intent(
            step_key,
            node=step_key.split("[")[0],
            kind=kind,
            attempt=attempt,
            key=key,
            skill=label,
            input_hash=value_hash(args),
            now=ctx.now(),
        )
        crash_point("after_intent", step_key)
        toolbox = ToolBox(ctx, step_key, skill.contract, args)
        with deps.telemetry.execute_tool_span(
            skill.ref.name, call_id=step_key, tool_type="extension"
        ) as span:
            span.set_attributes({"fleetplane.skill.version": skill.ref.version, "fleetplane.run.id": ctx.id})
            context = make_context(
                run_id=ctx.id,
                step_id=step_key,
                attempt=attempt,
                idempotency_key=key,
                traceparent=inject_headers().get("traceparent"),
                gateway_url=deps.gateway.base_url if deps.gateway else None,
                gateway_key=deps.gateway.key if deps.gateway else None,
                call_tool=toolbox.call if ctx.plan.spec.mcp else None,  # no servers: no tools to call
                log=lambda _line: None,
            )
            try:
                output = await skill.invoke(args, context)
            except Exception as exc:
                if toolbox.paused is not None:
                    await ctx.journal.record(step_key, "paused", node=step_key, kind=kind, now=ctx.now())
                    raise toolbox.paused from None
                error = toolbox.refused or exc
                reason = error_kind(error)
                span.set_error(reason, str(error))
                if at_most_once and reason == "timeout":
                    raise NeedsAttention(
                        f"step {step_key} ({label}, at-most-once) timed out, its outcome unknown, so it is "
                        "not retried; a person must decide (fleetplane runs resume --output/--rerun)",
                        {"step": step_key, "skill": label, "reason": "timed out"},
                    ) from exc
                if reason in policy.retry_on and tries < policy.max_attempts:
                    delay = min(policy.cap, policy.base * 2 ** (tries - 1))
                    data = {"attempt": attempt, "error": reason, "retry_in": delay}
                    await ctx.note(f"{step_key}:retry:{attempt}", "retry", data, step_key)
                    await deps.clock.sleep(delay)
                    continue
                await ctx.journal.record(
                    step_key, "failed", node=step_key, kind=kind, now=ctx.now(), error=str(error)
                )
                raise StepError(step_key, reason, f"step {step_key} failed ({reason}): {error}") from exc
        crash_point("after_execute", step_key)
        committed = await ctx.journal.commit(step_key, output, now=ctx.now())
        ctx.entries.pop(step_key, None)
        ctx.executed.append(step_key)
        crash_point("after_commit", step_key)
        return committed


__all__ = ["Paused", "StepError", "run_skill"]
