"""Gateway instrumentation: every request that reached a model group becomes one `chat` (or
`embeddings`) span — a child of the caller's trace when a `traceparent` arrives — with the request and
response models, provider, usage, cost, finish reasons, the deployment that served, fallback hops, cache,
quota and breaker decisions, and the GenAI metrics that go with it.

The span is written after the fact, with the request's real start and end times, once the answer has
left: no telemetry work sits between a client and its response, and nothing depends on which task a
stream ends in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from fleetplane.gateway.context import Reply, RequestContext
from fleetplane.gateway.errors import GatewayError
from fleetplane.gateway.policy import Policy
from fleetplane.gateway.quota.reserve import dollars
from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.propagation import extract_headers
from fleetplane.telemetry.setup import Telemetry

log = logging.getLogger("fleetplane.gateway")

PROMPT_NAME_HEADER = "x-fleetplane-prompt-name"
PROMPT_VERSION_HEADER = "x-fleetplane-prompt-version"
CONVERSATION_HEADER = "x-fleetplane-conversation-id"


def _provider_name(ctx: RequestContext) -> str:
    served = ctx.served_by or ctx.pending
    if served is not None:
        return served.provider.price_provider or served.provider.name
    first = ctx.group.chain[0][0].provider
    return first.price_provider or first.name


def _messages(ctx: RequestContext) -> tuple[list[dict[str, Any]], Any]:
    body = ctx.body
    messages = body.get("messages")
    return (list(messages) if isinstance(messages, list) else []), body.get("system")


def _output_messages(reply: Reply | None) -> list[dict[str, Any]]:
    if reply is None or reply.media_type != "application/json":
        return []
    try:
        body = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("choices"), list):
        return [
            c["message"]
            for c in body["choices"]
            if isinstance(c, dict) and isinstance(c.get("message"), dict)
        ]
    if body.get("type") == "message":
        return [{"role": "assistant", "content": body.get("content")}]
    return []


class TracingPolicy(Policy):
    name = "tracing"

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    async def on_complete(self, ctx: RequestContext, reply: Reply | None) -> None:
        self._later(ctx, reply, None)

    async def on_error(self, ctx: RequestContext, error: GatewayError) -> None:
        self._later(ctx, None, error)

    def _later(self, ctx: RequestContext, reply: Reply | None, error: GatewayError | None) -> None:
        end_ns = time.time_ns()
        try:
            asyncio.get_running_loop().call_soon(self._emit, ctx, reply, error, end_ns)
        except RuntimeError:
            self._emit(ctx, reply, error, end_ns)

    def _emit(
        self, ctx: RequestContext, reply: Reply | None, error: GatewayError | None, end_ns: int
    ) -> None:
        try:
            self._write(ctx, reply, error, end_ns)
        except Exception:  # telemetry must never take a request down with it
            log.exception("could not record the span of request %s", ctx.request_id)

    def _write(
        self, ctx: RequestContext, reply: Reply | None, error: GatewayError | None, end_ns: int
    ) -> None:
        spans = self.telemetry.spans
        headers = ctx.headers
        parent = extract_headers(headers) if "traceparent" in headers else None
        body = ctx.body
        common: dict[str, Any] = {
            "provider": _provider_name(ctx),
            "model": ctx.requested_model,
            "agent_name": ctx.tenant.agent,
            "attributes": {sc.FP_MODEL_GROUP: ctx.group.name, sc.FP_REQUEST_ID: ctx.request_id},
            "parent": parent,
        }
        if ctx.operation == "embeddings":
            span = spans.embeddings_span(**common)
        else:
            span = spans.chat_span(
                **common,
                max_tokens=_int(body.get("max_tokens") or body.get("max_completion_tokens")),
                temperature=_float(body.get("temperature")),
                top_p=_float(body.get("top_p")),
                stream=ctx.stream,
                conversation_id=headers.get(CONVERSATION_HEADER),
                prompt_name=headers.get(PROMPT_NAME_HEADER),
                prompt_version=headers.get(PROMPT_VERSION_HEADER),
                context_window=ctx.group.context_window,
            )
        span.open(start_time_ns=int(ctx.started_wall * 1e9), attach=False)
        tenant = ctx.tenant
        span.set_tenant(
            organization=tenant.organization, team=tenant.team, customer=tenant.customer, user=tenant.user,
            key=tenant.key_name,
        )  # fmt: skip
        served = ctx.served_by
        span.set_gateway(
            deployment=served.id if served else None,
            fallback_hops=max(0, len(ctx.attempts) - 1),
            cache_hit=ctx.cache_status == "hit" if ctx.cache_status else None,
            quota_decision=_quota_decision(ctx, error),
            breaker_decision="open" if error is not None and error.code == "breaker_open" else None,
        )
        for attempt in ctx.attempts:
            # When the attempt began, on the wall clock the span is written in.
            began = int((ctx.started_wall + (attempt.started - ctx.started)) * 1e9)
            span.span.add_event(
                "fleetplane.attempt",
                {"fleetplane.deployment": attempt.deployment.id, "fleetplane.attempt.number": attempt.number,
                 "fleetplane.attempt.error": attempt.error or ""},
                timestamp=began,
            )  # fmt: skip
        meta = ctx.response_meta
        span.set_response(id=meta.get("id"), model=meta.get("model") or (served.model if served else None),
                          finish_reasons=meta.get("finish_reasons"))  # fmt: skip
        if ctx.usage is not None and ctx.cache_status != "hit":
            span.set_usage(ctx.usage)
            if served is not None:
                span.set_cost(dollars(ctx.usage, served))
        if ctx.ttft is not None:
            span.outcome.time_to_first_chunk_s = ctx.ttft
        if self.telemetry.content.mode.any:
            messages, system = _messages(ctx)
            span.record_input(messages, system)
            span.record_output(_output_messages(reply) or meta.get("output_messages") or [])
        self._metrics(ctx, error)
        if error is not None:
            span.set_error(error.code or error.kind, error.message)
        elif ctx.stream_error:
            span.set_error("stream_broken", ctx.stream_error)
        elif ctx.client_disconnected:
            span.set_error("client_disconnected")
        span.close(end_time_ns=end_ns)

    def _metrics(self, ctx: RequestContext, error: GatewayError | None) -> None:
        """The gateway's decision counters; the model call's own metrics are the span's (`close`)."""
        attempts = ctx.attempts
        quiet = error is None and ctx.cache_status not in ("hit", "miss") and len(attempts) <= 1
        if quiet and (not attempts or ctx.served_by is not None or not attempts[0].error):
            return  # the common case (one attempt that served, no cache, no denial): nothing to count
        metrics = self.telemetry.metrics
        tenant = {sc.FP_TEAM: ctx.tenant.team, sc.FP_ORGANIZATION: ctx.tenant.organization}
        if ctx.cache_status in ("hit", "miss"):
            metrics.record_cache_lookup(
                ctx.cache_status == "hit", request_model=ctx.group.name, tenant=tenant
            )
        for attempt in ctx.attempts[:-1] if ctx.served_by else ctx.attempts:
            if attempt.error:
                metrics.record_fallback(
                    attempt.error.split(" ")[0][:40],
                    deployment=attempt.deployment.id,
                    request_model=ctx.group.name,
                )
        if error is not None and error.code == "quota_exceeded":
            scope = error.headers.get("x-fleetplane-quota-scope")
            metrics.record_quota_denial(
                error.headers.get("x-fleetplane-quota-limit", "quota"), scope=scope, tenant=tenant
            )
        if error is not None and error.code == "breaker_open":
            breaker = error.headers.get("x-fleetplane-breaker")
            trigger = error.headers.get("x-fleetplane-breaker-trigger") or "breaker"
            metrics.record_breaker_trip(trigger, breaker=breaker, tenant=tenant)


def _quota_decision(ctx: RequestContext, error: GatewayError | None) -> str | None:
    if error is not None and error.code == "quota_exceeded":
        return "denied"
    return "admitted" if ctx.limit_headers else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
