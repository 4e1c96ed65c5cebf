"""L3: walk a model group's fallback chain until a deployment answers, within one deadline.

Steps are tried in order; inside a step, deployments share traffic by weight. A 429, a 5xx, a timeout
or a connection error puts the deployment in cooldown (honouring `retry-after`) and moves on; any
other 4xx is the client's problem and is returned at once, never retried elsewhere. When every
deployment is resting, the request waits for the first to recover if that fits in the deadline,
otherwise it gets a 503 with `retry-after`.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import aiohttp
import orjson

from fleetplane.gateway.config import DeploymentRuntime
from fleetplane.gateway.context import Attempt, Reply, RequestContext
from fleetplane.gateway.cooldown import Cooldowns
from fleetplane.gateway.errors import GatewayError, UpstreamError
from fleetplane.gateway.exchange import Exchange, prepare
from fleetplane.gateway.policy import Outcome, OutcomeKind, Policy, PolicyChain, Skip
from fleetplane.gateway.sse import SSEParser
from fleetplane.gateway.streams import StreamWatcher
from fleetplane.gateway.upstream.pool import UpstreamPool, retry_after_seconds
from fleetplane.gateway.usage import counted_input, counted_output, openai_reply_text
from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.telemetry.cost import TokenUsage

# Statuses after which another deployment may well succeed.
_RETRYABLE_4XX = frozenset({408, 409, 429})


@dataclass
class OpenStream:
    """A stream whose upstream answered 200 and sent its first event; the relay carries it on."""

    exchange: Exchange
    response: aiohttp.ClientResponse
    parser: SSEParser
    watcher: StreamWatcher
    first: list[bytes]
    attempt: Attempt
    admitted: list[Policy]


@dataclass
class _Round:
    """What one pass over the chain learned."""

    errors: list[GatewayError] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)


class Router:
    def __init__(
        self,
        *,
        chain: PolicyChain,
        cooldowns: Cooldowns,
        pool: UpstreamPool,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        max_attempts: int = 8,
    ) -> None:
        self.chain = chain
        self.cooldowns = cooldowns
        self.pool = pool
        self.clock = clock
        self.rng = rng or random.Random()
        self.max_attempts = max_attempts

    async def route(self, ctx: RequestContext) -> Reply | OpenStream:
        errors: list[GatewayError] = []
        skips: list[Skip] = []
        while True:
            result = await self._round(ctx, errors, skips)
            if result is not None:
                return result
            wait = await self._next_ready(ctx, skips)
            remaining = ctx.remaining(self.clock.monotonic())
            out_of_attempts = len(ctx.attempts) >= self.max_attempts
            if wait is None or wait > remaining or out_of_attempts:
                fallback = await self.chain.on_exhausted(ctx)
                if fallback is not None:
                    return fallback
                raise self._exhausted(ctx, errors, skips, wait)
            await self.clock.sleep(wait)
            skips.clear()

    async def _round(
        self, ctx: RequestContext, errors: list[GatewayError], skips: list[Skip]
    ) -> Reply | OpenStream | None:
        for step in ctx.group.chain:
            candidates = list(step)
            while candidates:
                if len(ctx.attempts) >= self.max_attempts:
                    return None
                resting = await self.cooldowns.remaining([d.id for d in candidates])
                available = [d for d, left in zip(candidates, resting, strict=True) if left <= 0]
                if not available:
                    break
                deployment = self._pick(available)
                candidates.remove(deployment)
                if ctx.remaining(self.clock.monotonic()) <= 0:
                    return None
                try:
                    return await self._attempt(ctx, deployment)
                except Skip as skip:
                    skips.append(skip)
                except UpstreamError as error:
                    if not _retryable(error.status):
                        raise
                    errors.append(error)
                except GatewayError as error:
                    if error.kind != "unavailable" and error.kind != "invalid_request":
                        raise
                    errors.append(error)
        return None

    def _pick(self, available: list[DeploymentRuntime]) -> DeploymentRuntime:
        if len(available) == 1:
            return available[0]
        return self.rng.choices(available, weights=[d.weight for d in available])[0]

    async def _next_ready(self, ctx: RequestContext, skips: list[Skip]) -> float | None:
        """Seconds until some deployment may be tried again; None when none will be."""
        resting = [
            left
            for left in await self.cooldowns.remaining([d.id for d in ctx.group.deployments()])
            if left > 0
        ]
        deferred = [s.retry_after for s in skips if s.retry_after is not None and s.retry_after > 0]
        candidates = resting + deferred
        return min(candidates) if candidates else None

    def _exhausted(
        self, ctx: RequestContext, errors: list[GatewayError], skips: list[Skip], wait: float | None
    ) -> GatewayError:
        upstream = [e for e in errors if isinstance(e, UpstreamError)]
        if upstream and len(upstream) == len(errors) and all(e.status == 429 for e in upstream) and not skips:
            last = upstream[-1]
            return UpstreamError(429, last.message, kind="rate_limit", retry_after=wait or last.retry_after)
        if errors and all(e.kind == "invalid_request" for e in errors) and not skips:
            return errors[-1]
        if skips and not errors and skips[-1].error is not None:
            denial = skips[-1].error
            if wait is not None:
                denial.retry_after = wait
            return denial
        tried = (
            "; ".join(f"{a.deployment.id}: {a.error}" for a in ctx.attempts if a.error)
            or "all deployments are cooling down"
        )
        return GatewayError(
            "unavailable",
            f"No deployment of model {ctx.group.name!r} could serve the request ({tried}).",
            code="no_deployment_available",
            retry_after=wait if wait is not None else ctx.group.cooldown,
        )

    async def _attempt(self, ctx: RequestContext, deployment: DeploymentRuntime) -> Reply | OpenStream:
        attempt = Attempt(deployment=deployment, number=len(ctx.attempts) + 1, started=self.clock.monotonic())
        ctx.attempts.append(attempt)
        if deployment.provider.unusable:
            attempt.error = deployment.provider.unusable
            raise GatewayError("unavailable", deployment.provider.unusable)
        try:
            exchange = prepare(ctx, deployment)
        except GatewayError as error:
            attempt.error = error.message
            raise
        try:
            admitted = await self.chain.before_attempt(ctx, attempt)
        except Skip as skip:
            attempt.error = f"skipped: {skip.reason}"
            raise
        timeout = ctx.remaining(self.clock.monotonic())
        if deployment.timeout is not None:
            timeout = min(timeout, deployment.timeout)
        try:
            return await self._exchange(ctx, attempt, exchange, admitted, timeout)
        except asyncio.CancelledError:
            await self.chain.after_attempt(ctx, attempt, Outcome("cancelled"), admitted)
            raise

    async def _exchange(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        exchange: Exchange,
        admitted: list[Policy],
        timeout: float,
    ) -> Reply | OpenStream:
        deployment = attempt.deployment
        try:
            response = await self.pool.send(deployment.provider, exchange.request, timeout=timeout)
        except TimeoutError:
            outcome = Outcome("timeout", detail=f"no answer within {timeout:.1f}s")
            raise await self._unavailable(ctx, attempt, admitted, outcome) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise await self._unavailable(
                ctx, attempt, admitted, Outcome("connection", detail=_describe(exc))
            ) from None
        attempt.status = response.status
        if response.status >= 400:
            try:
                async with asyncio.timeout(max(0.001, ctx.remaining(self.clock.monotonic()))):
                    raw = await response.read()
            except (TimeoutError, aiohttp.ClientError):
                raw = b""
            finally:
                response.release()
            retry_after = retry_after_seconds(response.headers, clock=self.clock)
            error = exchange.error(ctx, response.status, raw, retry_after)
            if not _retryable(response.status):
                attempt.error = f"{response.status}"
                await self.chain.after_attempt(
                    ctx, attempt, Outcome("client_error", status=response.status), admitted
                )
                raise error
            kind: OutcomeKind = "rate_limited" if response.status == 429 else "server_error"
            outcome = Outcome(
                kind, status=response.status, retry_after=retry_after, detail=str(response.status)
            )
            await self._failed(ctx, attempt, admitted, outcome)
            raise error
        if ctx.stream:
            return await self._open_stream(ctx, attempt, exchange, admitted, response)
        return await self._complete(ctx, attempt, exchange, admitted, response)

    async def _failed(
        self, ctx: RequestContext, attempt: Attempt, admitted: list[Policy], outcome: Outcome
    ) -> None:
        """Record a failed attempt and rest the deployment; the caller raises what the chain sees."""
        attempt.error = outcome.detail or outcome.kind
        attempt.retry_after = outcome.retry_after
        rest = outcome.retry_after if outcome.retry_after is not None else ctx.group.cooldown
        await self.cooldowns.mark(attempt.deployment.id, rest)
        await self.chain.after_attempt(ctx, attempt, outcome, admitted)

    async def _unavailable(
        self, ctx: RequestContext, attempt: Attempt, admitted: list[Policy], outcome: Outcome
    ) -> GatewayError:
        await self._failed(ctx, attempt, admitted, outcome)
        return GatewayError("unavailable", f"{attempt.deployment.id}: {attempt.error}")

    async def _complete(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        exchange: Exchange,
        admitted: list[Policy],
        response: aiohttp.ClientResponse,
    ) -> Reply:
        try:
            async with asyncio.timeout(max(0.001, ctx.remaining(self.clock.monotonic()))):
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            response.release()
            kind: OutcomeKind = "timeout" if isinstance(exc, TimeoutError) else "connection"
            raise await self._unavailable(
                ctx, attempt, admitted, Outcome(kind, detail=_describe(exc))
            ) from None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            outcome = Outcome(
                "server_error", status=response.status, detail="upstream answered with invalid JSON"
            )
            raise await self._unavailable(ctx, attempt, admitted, outcome) from None
        usage = exchange.usage(body) if isinstance(body, dict) else None
        if usage is None or (usage.input_tokens == 0 and usage.output_tokens == 0):
            ctx.usage_source = "counted"
            usage = TokenUsage(
                input_tokens=counted_input(ctx.operation, ctx.body),
                output_tokens=counted_output(openai_reply_text(body)) if ctx.operation == "chat" else 0,
            )
        else:
            ctx.usage_source = "reported"
        ctx.usage = usage
        ctx.served_by = attempt.deployment
        ctx.dropped_params = exchange.dropped
        if exchange.upstream_api != ctx.client_api:
            raw = orjson.dumps(exchange.reply(body))
        await self.chain.after_attempt(ctx, attempt, Outcome("ok", status=200, usage=usage), admitted)
        return Reply(status=200, body=raw)

    async def _open_stream(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        exchange: Exchange,
        admitted: list[Policy],
        response: aiohttp.ClientResponse,
    ) -> OpenStream:
        """Wait for the first event before committing: an early error event still falls back."""
        parser = SSEParser()
        watcher = exchange.watcher()
        first: list[bytes] = []
        try:
            async with asyncio.timeout(max(0.001, ctx.remaining(self.clock.monotonic()))):
                while not first and watcher.error is None:
                    data = await response.content.readany()
                    if not data:
                        for event in parser.finish():
                            first.extend(watcher.feed(event))
                        if not first:
                            raise aiohttp.ClientPayloadError("the stream ended before its first event")
                        break
                    for event in parser.feed(data):
                        first.extend(watcher.feed(event))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            response.close()
            kind: OutcomeKind = "timeout" if isinstance(exc, TimeoutError) else "connection"
            raise await self._unavailable(
                ctx, attempt, admitted, Outcome(kind, detail=_describe(exc))
            ) from None
        if watcher.error is not None:
            response.close()
            message = str(watcher.error.get("message") or watcher.error.get("type") or "error event")
            outcome = Outcome("server_error", detail=f"stream error: {message}")
            raise await self._unavailable(ctx, attempt, admitted, outcome)
        ctx.ttft = self.clock.monotonic() - ctx.started
        ctx.served_by = attempt.deployment
        ctx.dropped_params = exchange.dropped
        return OpenStream(exchange, response, parser, watcher, first, attempt, admitted)


def _retryable(status: int) -> bool:
    return status >= 500 or status in _RETRYABLE_4XX


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "…"
