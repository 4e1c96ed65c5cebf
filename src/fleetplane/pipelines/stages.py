"""The stages around the steps: context (values and RAG retrieval), route (rules, an LLM choice through the
gateway, or the default; recorded with its rationale and journaled so a resume never asks again), and
sink (each delivery journaled, keyed for idempotency).
"""

from __future__ import annotations

from typing import Any

import orjson

from fleetplane.manifests.expression_templates import compile_condition, render
from fleetplane.manifests.expressions import ExprError
from fleetplane.manifests.pipeline import Route, Sink
from fleetplane.pipelines.context import RunContext
from fleetplane.pipelines.faults import crash_point
from fleetplane.pipelines.gateway import GatewayError
from fleetplane.pipelines.journal import idempotency_key
from fleetplane.pipelines.outcomes import RunFailed
from fleetplane.pipelines.sinks import SinkError, deliver
from fleetplane.pipelines.steps import run_skill


async def condition(
    ctx: RunContext, key: str, text: str, scope: dict[str, Any], step_key: str | None
) -> bool:
    """Evaluate a condition and record it with the values it read."""
    expression = compile_condition(text)
    try:
        result = bool(expression.evaluate(scope))
    except ExprError as exc:
        raise RunFailed(f"{key}: {exc}") from None
    reads = {
        f"steps.{ref}.output": (scope.get("steps", {}).get(ref) or {}).get("output")
        for ref in expression.step_refs
    }
    reads.update({name: scope.get(name) for name in expression.names if name in ("input", "context", "item")})
    await ctx.note(key, "condition", {"when": text, "result": result, "reads": reads}, step_key)
    return result


async def context_stage(ctx: RunContext, scope: dict[str, Any]) -> None:
    spec = ctx.plan.spec.context
    values = scope["context"]
    for name, template in spec.values.items():
        values[name] = render(template, scope)
    for retrieval in spec.retrieve:
        query = render(retrieval.query, scope)
        key = f"context:{retrieval.name}"
        args = {"query": query, "top_k": retrieval.top_k}
        values[retrieval.name] = await run_skill(
            ctx, key, lock_key=retrieval.skill, args=args, step_id=key, kind="context"
        )
        await ctx.note(
            key, "retrieval", {"name": retrieval.name, "skill": retrieval.skill, "query": query}, key
        )


async def route_stage(ctx: RunContext, route: Route, scope: dict[str, Any]) -> dict[str, Any]:
    entry = ctx.entries.get("route")
    if entry is not None and entry.state == "committed" and entry.output_digest is not None:
        ctx.replayed.append("route")
        return dict(await ctx.journal.output(entry.output_digest))
    now = ctx.now()
    await ctx.journal.intent(
        "route",
        node="route",
        kind="route",
        attempt=1,
        key=idempotency_key(ctx.id, "route"),
        skill=None,
        input_hash=None,
        now=now,
    )
    decision = await _decide(ctx, route, scope)
    decision["skill"] = route.choices[decision["choice"]]
    await ctx.note("route", "route", decision, "route")
    return dict(await ctx.journal.commit("route", decision, now=ctx.now()))


async def _decide(ctx: RunContext, route: Route, scope: dict[str, Any]) -> dict[str, Any]:
    for i, rule in enumerate(route.rules):
        if await condition(ctx, f"route:rule:{i}", rule.when, scope, "route"):
            return {"choice": rule.choose, "by": "rule", "why": rule.why or f"rule {i + 1}: {rule.when}"}
    if route.llm is not None:
        gateway = ctx.deps.gateway
        problem = "no gateway is configured (FLEETPLANE_GATEWAY_URL)"
        if gateway is not None:
            rendered = render(route.llm.prompt, scope)
            prompt = rendered if isinstance(rendered, str) else orjson.dumps(rendered).decode()
            listed = "\n".join(f"- {name}: {skill}" for name, skill in route.choices.items())
            schema = {
                "type": "object",
                "properties": {
                    "choice": {"type": "string", "enum": list(route.choices)},
                    "why": {"type": "string"},
                },
                "required": ["choice", "why"],
            }
            try:
                answer = await gateway.function(
                    route.llm.model, f"{prompt}\n\nChoices:\n{listed}", "choose", schema
                )
                choice = answer.arguments.get("choice")
                if choice in route.choices:
                    why = str(answer.arguments.get("why") or "")
                    return {"choice": choice, "by": "llm", "why": why, "model": answer.model}
                problem = f"the model chose {choice!r}, not one of {', '.join(route.choices)}"
            except GatewayError as exc:
                problem = str(exc)
        if route.default is None:
            raise RunFailed(f"route: the LLM router could not choose: {problem}")
        return {
            "choice": route.default,
            "by": "default",
            "why": f"the LLM router could not choose: {problem}",
        }
    if route.default is None:
        raise RunFailed("route: no rule matched and there is no default")
    return {"choice": route.default, "by": "default", "why": "no rule matched"}


async def sink_stage(ctx: RunContext, scope: dict[str, Any]) -> list[str]:
    delivered = []
    for sink in ctx.plan.spec.sink:
        key = f"sink:{sink.name}"
        entry = ctx.entries.get(key)
        if entry is not None and entry.state in ("committed", "skipped"):
            ctx.replayed.append(key)
            continue
        if sink.when is not None and not await condition(ctx, f"{key}:when", sink.when, scope, key):
            await ctx.journal.record(key, "skipped", node=key, kind="sink", now=ctx.now())
            continue
        await _send(ctx, sink, key, scope)
        delivered.append(key)
    return delivered


async def _send(ctx: RunContext, sink: Sink, key: str, scope: dict[str, Any]) -> None:
    target = sink.http or sink.file or sink.table
    assert target is not None
    template = target.model_dump(by_alias=True)
    for field_name in ("body", "row"):
        if field_name in template and template[field_name] is None:
            template[field_name] = "{{ output }}"
    rendered = render(template, scope)
    idem = idempotency_key(ctx.id, key)
    await ctx.journal.intent(
        key, node=key, kind="sink", attempt=1, key=idem, skill=None, input_hash=None, now=ctx.now()
    )
    crash_point("after_sink_intent", key)
    try:
        result = await deliver(
            sink,
            rendered,
            key=idem,
            run_id=ctx.id,
            pipeline=ctx.plan.pipeline,
            store=ctx.deps.store,
            http=ctx.deps.http,
            root=ctx.deps.sink_root,
            now=ctx.now(),
        )
    except SinkError as exc:
        await ctx.journal.record(key, "failed", node=key, kind="sink", now=ctx.now(), error=str(exc))
        raise RunFailed(str(exc)) from exc
    crash_point("after_sink_send", key)
    await ctx.journal.commit(key, result, now=ctx.now())
