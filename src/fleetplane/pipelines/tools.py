"""Tool-call governance: what a skill may call while a step runs, and when a person must approve first.

A skill may call the tools its contract declares, intersected with the pipeline's policy allow-list
(`spec.policy.tools`; none given allows what the skill declares). A refused call is recorded and audited
and fails the step. A call whose rule needs approval pauses the run at a gate named after the call; on
resume the step runs again, the calls it already made are replayed from the journal, and the approved
call goes ahead with the approved arguments. Each call is an `execute_tool` span.
"""

from __future__ import annotations

from typing import Any

from fleetplane.manifests.expression_templates import compile_condition
from fleetplane.manifests.expressions import ExprError
from fleetplane.pipelines.context import RunContext
from fleetplane.pipelines.gates import gate
from fleetplane.pipelines.journal import idempotency_key, value_hash
from fleetplane.pipelines.outcomes import Paused, RunFailed
from fleetplane.pipelines.skillapi import ContractLike, ToolRuleLike


class ToolRefused(Exception):
    """A tool call outside the allow-list (or rejected by a person)."""

    kind = "refused"  # a skill error kind no retry policy lists


def allowed_tools(contract: ContractLike, policy: list[str] | None) -> set[str]:
    declared = {t.name for t in contract.tools}
    return declared if policy is None else declared & set(policy)


def needs_approval(rule: ToolRuleLike, args: dict[str, Any], input: Any) -> bool:
    """`when` rules fail closed: one that cannot be evaluated asks a person."""
    if rule.approval != "when":
        return rule.approval == "always"
    try:
        return bool(compile_condition(rule.when or "true").evaluate({"args": args, "input": input}))
    except ExprError:
        return True


class ToolBox:
    """The `call_tool` a skill gets for one step."""

    def __init__(self, ctx: RunContext, step_key: str, contract: ContractLike, input: Any) -> None:
        self.ctx, self.step_key, self.contract, self.input = ctx, step_key, contract, input
        self.allowed = allowed_tools(contract, ctx.plan.spec.policy.tools)
        self.calls = 0
        self.paused: Paused | None = None  # set when a call waits for a person (a skill may swallow errors)
        self.refused: Exception | None = None

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        key = f"{self.step_key}/tool:{name}#{self.calls}"
        ctx = self.ctx
        entry = ctx.entries.get(key)
        if entry is not None and entry.state == "committed" and entry.output_digest:
            return dict(await ctx.journal.output(entry.output_digest))
        if name not in self.allowed:
            why = (
                "the skill does not declare it"
                if name not in {t.name for t in self.contract.tools}
                else ("the pipeline's policy does not allow it")
            )
            await ctx.note(key, "tool", {"tool": name, "refused": why}, self.step_key)
            details = {"tool": name, "step": self.step_key, "why": why}
            await ctx.audit.once(
                "tool.refused", f"{ctx.plan.pipeline}/{ctx.id}/{key}", details, now=ctx.now()
            )
            self.refused = ToolRefused(f"tool {name} refused for step {self.step_key}: {why}")
            raise self.refused
        rule = next(t for t in self.contract.tools if t.name == name)
        if needs_approval(rule, arguments, self.input):
            try:
                arguments = await gate(
                    ctx, key, step_key=self.step_key, kind="tool", arguments=arguments, tool=name
                )
            except Paused as paused:
                self.paused = paused
                raise
            except RunFailed as failed:
                self.refused = failed
                raise
        await ctx.note(key, "tool", {"tool": name, "args_hash": value_hash(arguments)}, self.step_key)
        now = ctx.now()
        await ctx.journal.intent(
            key,
            node=self.step_key,
            kind="tool",
            attempt=1,
            key=idempotency_key(ctx.id, key),
            skill=None,
            input_hash=value_hash(arguments),
            now=now,
        )
        with ctx.deps.telemetry.execute_tool_span(name, call_id=key, tool_type="extension"):
            output = await ctx.mcp.call(name, arguments, now=now)
        return dict(await ctx.journal.commit(key, output, now=ctx.now()))
