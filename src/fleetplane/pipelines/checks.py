"""Guardrails where the engine meets them: run the checks, record each verdict, act on `on_fail`.

`block` ends the run (and audits the block); `retry` asks the caller to run the step again (when its
effect allows); `human` pauses the run at a gate showing the value and the reasons — approving accepts
the value, rejecting ends the run.
"""

from __future__ import annotations

from typing import Any

from fleetplane.manifests.pipeline import Validation
from fleetplane.pipelines.context import RunContext
from fleetplane.pipelines.gates import gate
from fleetplane.pipelines.guardrails import Verdict, check
from fleetplane.pipelines.outcomes import RunFailed


class RetryStep(Exception):
    """A guardrail with `on_fail: retry` failed: run the step again."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        super().__init__(f"guardrail {verdict.name}: " + "; ".join(verdict.reasons))


async def guard(
    ctx: RunContext,
    checks: list[Validation],
    value: Any,
    scope: dict[str, Any],
    *,
    where: str,
    attempt: int = 1,
    may_retry: bool = False,
) -> None:
    for validation in checks:
        verdict = await check(validation, value, scope, ctx.deps.gateway)
        key = f"guardrail:{validation.name}:{where}:{attempt}"
        await ctx.note(key, "guardrail", {"at": where, **verdict.to_json()}, where)
        if verdict.passed:
            continue
        reasons = "; ".join(verdict.reasons)
        if verdict.on_fail == "retry" and may_retry and attempt <= validation.retries:
            raise RetryStep(verdict)
        if verdict.on_fail == "human":
            arguments = {"value": value, "reasons": verdict.reasons}
            await gate(
                ctx,
                f"guardrail:{validation.name}:{where}",
                step_key=where,
                kind="guardrail",
                arguments=arguments,
            )
            continue
        details = {"guardrail": validation.name, "at": where, "reasons": verdict.reasons}
        subject = f"{ctx.plan.pipeline}/{ctx.id}/{where}/{validation.name}"
        await ctx.audit.once("guardrail.block", subject, details, now=ctx.now())
        raise RunFailed(f"guardrail {validation.name} blocked {where}: {reasons}")
