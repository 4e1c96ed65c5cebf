"""One request through the gateway: auth → parse → resolve the model group → the policy chain and the
L3 router → the answer, its headers, and its line in the usage ledger.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fleetplane.gateway.auth import KeyIndex
from fleetplane.gateway.config import GatewayConfig, ModelGroup
from fleetplane.gateway.context import ClientApi, Operation, Reply, RequestContext
from fleetplane.gateway.errors import GatewayError
from fleetplane.gateway.ledger import Pending, UsageLedger
from fleetplane.gateway.parse import DEFAULT_MAX_BODY, parse, read_body
from fleetplane.gateway.policy import PolicyChain
from fleetplane.gateway.relay import abandon, relay
from fleetplane.gateway.respond import ClientGone, EventStream, unless_disconnected
from fleetplane.gateway.router import OpenStream, Router
from fleetplane.gateway.tenant import Tenant
from fleetplane.gateway.usage import counted_input
from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.store.usage import UsageRecord
from fleetplane.telemetry.cost import TokenUsage

log = logging.getLogger("fleetplane.gateway")

# Client headers policies may read (the rest are not copied per request).
_KEPT_HEADERS = (
    "x-fleetplane-cache", "cache-control", "anthropic-version", "anthropic-beta", "traceparent",
    "x-fleetplane-conversation-id",
    "x-fleetplane-prompt-name",
    "x-fleetplane-prompt-version",
    "tracestate",
)  # fmt: skip


class Gateway:
    def __init__(
        self,
        *,
        config: Callable[[], GatewayConfig],
        keys: KeyIndex,
        chain: PolicyChain,
        router: Router,
        ledger: UsageLedger,
        clock: Clock = SYSTEM_CLOCK,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._config = config
        self.keys = keys
        self.chain = chain
        self.router = router
        self.ledger = ledger
        self.clock = clock
        self.max_body = max_body

    async def chat_completions(self, request: Request) -> Response | EventStream:
        return await self.handle(request, "chat", "openai")

    async def messages(self, request: Request) -> Response | EventStream:
        return await self.handle(request, "messages", "anthropic")

    async def embeddings(self, request: Request) -> Response | EventStream:
        return await self.handle(request, "embeddings", "openai")

    async def handle(
        self, request: Request, operation: Operation, client_api: ClientApi
    ) -> Response | EventStream:
        request_id = "req_" + secrets.token_hex(12)
        ctx: RequestContext | None = None
        try:
            tenant = await self.keys.authenticate(request.headers)
            parsed = parse(await read_body(request, self.max_body), operation)
            group = self._group(parsed.model, operation, tenant)
            now = self.clock.monotonic()
            ctx = RequestContext(
                request_id=request_id,
                operation=operation,
                client_api=client_api,
                body=parsed.body,
                raw=parsed.raw,
                stream=parsed.stream,
                tenant=tenant,
                group=group,
                requested_model=parsed.model,
                started=now,
                started_wall=self.clock.now(),
                deadline=now + group.timeout,
                headers={h: request.headers[h] for h in _KEPT_HEADERS if h in request.headers},
                include_usage=parsed.include_usage,
            )
            reply = await self.chain.on_request(ctx)
            if reply is None:
                routed = await unless_disconnected(
                    request.receive, self.router.route(ctx), discard=partial(_discard, ctx)
                )
                if isinstance(routed, OpenStream):
                    return self._stream(ctx, routed)
                reply = routed
            await self.chain.on_complete(ctx, reply)
            self._record(ctx, reply.status)
            return Response(
                reply.body, status_code=reply.status, media_type=reply.media_type, headers=_headers(ctx)
            )
        except GatewayError as error:
            if ctx is not None:
                await self.chain.on_error(ctx, error)
                self._record(ctx, error.status, error=error.kind)
            return error_response(error, client_api, request_id)
        except ClientGone:
            if ctx is not None:
                ctx.client_disconnected = True
                await self.chain.on_error(
                    ctx, GatewayError("invalid_request", "the client went away", status=499)
                )
                self._record(ctx, 499, error="client_disconnected")
            return Response(status_code=499)
        except asyncio.CancelledError:
            # The server is stopping with this request unanswered: record it, and tell the client to
            # come back (to another replica) rather than leave it with a broken connection.
            stopping = GatewayError("unavailable", "The gateway is shutting down; retry.", retry_after=1)
            if ctx is not None:
                ctx.client_disconnected = True
                self._record(ctx, 499, error="server_stopping")
            return error_response(stopping, client_api, request_id)
        except Exception:
            log.exception("request %s failed unexpectedly", request_id)
            message = f"The gateway failed to handle request {request_id}; it is logged."
            failure = GatewayError("internal", message)
            if ctx is not None:
                await self.chain.on_error(ctx, failure)
                self._record(ctx, 500, error="internal")
            return error_response(failure, client_api, request_id)

    def _group(self, model: str, operation: Operation, tenant: Tenant) -> ModelGroup:
        group = self._config().resolve(model)
        if group is None:
            raise GatewayError(
                "not_found",
                f"The model {model!r} does not exist. GET /v1/models lists the models this key may use.",
                param="model",
                code="model_not_found",
            )
        if not tenant.may_use(group.name, model):
            raise GatewayError(
                "permission",
                f"The key {tenant.key_name!r} may not use the model {model!r}.",
                param="model",
                code="model_not_allowed",
            )
        if (operation == "embeddings") != (group.type == "embeddings"):
            expected = "an embeddings" if operation == "embeddings" else "a chat"
            raise GatewayError(
                "invalid_request",
                f"The model {model!r} is a {group.type} model; this endpoint needs {expected} model.",
                param="model",
                code="wrong_model_type",
            )
        return group

    def _stream(self, ctx: RequestContext, stream: OpenStream) -> EventStream:
        async def settled(ctx: RequestContext, whole: bytes | None) -> None:
            reply = Reply(200, whole, media_type="text/event-stream") if whole is not None else None
            try:
                await self.chain.on_complete(ctx, reply)
            finally:  # the ledger records what the quota charged, whatever a policy's hook did
                status = 499 if ctx.client_disconnected else 200
                error = "stream_broken" if ctx.stream_error and status == 200 else None
                self._record(ctx, status, error=error)

        body = relay(ctx, stream, self.chain, on_settled=settled, capture=ctx.capture_stream)
        return EventStream(body, _headers(ctx))

    def _record(self, ctx: RequestContext, status: int, *, error: str | None = None) -> None:
        served = ctx.served_by or ctx.pending
        usage = ctx.usage
        if usage is None and ctx.client_disconnected and ctx.pending is not None:
            # The upstream had the prompt when the client left; it will bill what it read.
            usage = TokenUsage(input_tokens=counted_input(ctx.operation, ctx.body))
            ctx.usage_source = "counted"
        record = UsageRecord(
            request_id=ctx.request_id,
            created_at=ctx.started_wall,
            api=ctx.operation,
            status=status,
            stream=ctx.stream,
            usage_source="cache" if ctx.cache_status == "hit" else ctx.usage_source,
            key_id=ctx.tenant.key_id,
            organization=ctx.tenant.organization,
            team=ctx.tenant.team,
            user=ctx.tenant.user,
            customer=ctx.tenant.customer,
            agent=ctx.tenant.agent,
            model=ctx.group.name,
            provider=served.provider.name if served else None,
            deployment_model=served.model if served else None,
            latency_ms=(self.clock.monotonic() - ctx.started) * 1000,
            ttft_ms=ctx.ttft * 1000 if ctx.ttft is not None else None,
            attempts=len(ctx.attempts),
            fallback=ctx.fallback,
            cache_hit=ctx.cache_status == "hit",
            client_disconnected=ctx.client_disconnected,
            error_type=error,
        )
        if usage is not None and ctx.cache_status != "hit":
            record.input_tokens = usage.input_tokens
            record.output_tokens = usage.output_tokens
            record.cache_read_tokens = usage.cache_read_tokens
            record.cache_write_tokens = usage.cache_write_tokens
            record.reasoning_tokens = usage.reasoning_tokens
        priced = served if usage is not None and ctx.cache_status != "hit" else None
        self.ledger.record(
            Pending(
                record=record,
                usage=usage if priced else None,
                rates=priced.rates if priced else None,
                price_provider=priced.provider.price_provider if priced else None,
                price_model=priced.model if priced else None,
            )
        )

    async def models(self, request: Request) -> Response:
        try:
            tenant = await self.keys.authenticate(request.headers)
        except GatewayError as error:
            api: ClientApi = "anthropic" if "anthropic-version" in request.headers else "openai"
            return error_response(error, api, "req_" + secrets.token_hex(12))
        groups = [g for g in self._config().groups.values() if tenant.may_use(g.name)]
        created = 1_700_000_000
        if "anthropic-version" in request.headers:
            data: list[dict[str, Any]] = [
                {"type": "model", "id": g.name, "display_name": g.name, "created_at": "2023-11-14T22:13:20Z"}
                for g in groups
            ]
            first = data[0]["id"] if data else None
            last = data[-1]["id"] if data else None
            body = {"data": data, "has_more": False, "first_id": first, "last_id": last}
        else:
            body = {
                "object": "list",
                "data": [
                    {"id": g.name, "object": "model", "created": created, "owned_by": "fleetplane"}
                    for g in groups
                ],
            }
        return Response(orjson.dumps(body), media_type="application/json")


async def _discard(ctx: RequestContext, routed: Reply | OpenStream) -> None:
    """What routing made after the client had gone: an opened stream is settled; a reply needs nothing."""
    if isinstance(routed, OpenStream):
        await abandon(ctx, routed)


def _headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-fleetplane-request-id": ctx.request_id, "x-fleetplane-model-group": ctx.group.name}
    headers.update(ctx.limit_headers)
    if ctx.served_by is not None:
        headers["x-fleetplane-deployment"] = ctx.served_by.id
        headers["x-fleetplane-fallback"] = "true" if ctx.fallback else "false"
    headers["x-fleetplane-attempts"] = str(len(ctx.attempts))
    if ctx.cache_status is not None:
        headers["x-fleetplane-cache"] = ctx.cache_status
    if ctx.dropped_params:
        headers["x-fleetplane-dropped-params"] = ",".join(ctx.dropped_params)
    return headers


def error_response(error: GatewayError, api: ClientApi, request_id: str) -> Response:
    headers = {"x-fleetplane-request-id": request_id, **error.response_headers()}
    return Response(error.body(api), status_code=error.status, media_type="application/json", headers=headers)
