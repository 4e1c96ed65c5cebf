"""L3: walk a model group's fallback chain until a deployment answers, within one deadline.

Steps are tried in order; inside a step, deployments share traffic by weight. A deployment that fails —
429, 5xx, refusing the gateway's credentials or model (401/403/404), timing out, unreachable — rests in
a cooldown (honouring `retry-after`) and the chain moves on; a 400/413/422 is the request's own fault and
goes straight back to the client. When every deployment rests, the request waits for the first to
recover if that fits in the deadline, otherwise it gets a 503 with `retry-after`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from fleetplane.gateway.attempt import AttemptRun
from fleetplane.gateway.config import DeploymentRuntime
from fleetplane.gateway.context import Attempt, Reply, RequestContext
from fleetplane.gateway.cooldown import Cooldowns
from fleetplane.gateway.errors import GatewayError, UpstreamError
from fleetplane.gateway.exchange import Exchange, prepare
from fleetplane.gateway.policy import Outcome, OutcomeKind, PolicyChain, Skip
from fleetplane.gateway.sse import SSEParser
from fleetplane.gateway.streams import StreamWatcher
from fleetplane.gateway.upstream.pool import Held, UpstreamPool, retry_after_seconds
from fleetplane.gateway.usage import anthropic_reply_text, counted_input, counted_output, openai_reply_text
from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.telemetry.cost import TokenUsage

log = logging.getLogger("fleetplane.gateway")

# The request's own fault: another deployment would refuse it too.
_CLIENT_FAULT = frozenset({400, 413, 422})
# An attempt is not started, and a wait not begun, with less than this left of the deadline.
MIN_ATTEMPT = 0.5


@dataclass
class OpenStream:
    """A stream whose upstream answered 200 and sent its first event; the relay carries it on."""

    exchange: Exchange
    held: Held
    parser: SSEParser
    watcher: StreamWatcher
    first: list[bytes]
    run: AttemptRun

    @property
    def attempt(self) -> Attempt:
        return self.run.attempt

    @property
    def response(self) -> aiohttp.ClientResponse:
        return self.held.response


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
            wait = await self._next_ready(ctx)
            remaining = ctx.remaining(self.clock.monotonic())
            out_of_attempts = len(ctx.attempts) >= self.max_attempts
            if wait is None or wait + MIN_ATTEMPT > remaining or out_of_attempts:
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
                if ctx.remaining(self.clock.monotonic()) < MIN_ATTEMPT:
                    return None
                try:
                    return await self._attempt(ctx, deployment)
                except Skip as skip:
                    skips.append(skip)
                except UpstreamError as error:
                    if error.status in _CLIENT_FAULT:
                        raise
                    errors.append(error)
                except GatewayError as error:
                    if error.kind not in ("unavailable", "invalid_request"):
                        raise
                    errors.append(error)
        return None

    def _pick(self, available: list[DeploymentRuntime]) -> DeploymentRuntime:
        if len(available) == 1:
            return available[0]
        return self.rng.choices(available, weights=[d.weight for d in available])[0]

    async def _next_ready(self, ctx: RequestContext) -> float | None:
        """Seconds until a resting deployment may be tried again; None when none rests.

        A policy's refusal (a spent quota) is not waited out here: the policy decides whether its
        requests may wait (a key's `wait` setting), and otherwise the client hears the refusal now.
        """
        left = await self.cooldowns.remaining([d.id for d in ctx.group.deployments()])
        resting = [seconds for seconds in left if seconds > 0]
        return min(resting) if resting else None

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
        tried = "; ".join(f"{a.deployment.id}: {a.error}" for a in ctx.attempts if a.error)
        return GatewayError(
            "unavailable",
            f"No deployment of model {ctx.group.name!r} could serve the request "
            f"({tried or 'all deployments are cooling down'}).",
            code="no_deployment_available",
            retry_after=wait if wait is not None else ctx.group.cooldown,
        )

    # -- one attempt -----------------------------------------------------------------------------------

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
        run = AttemptRun(ctx, attempt, admitted, self.chain, self.cooldowns)
        budget = ctx.remaining(self.clock.monotonic())
        if deployment.timeout is not None:
            budget = min(budget, deployment.timeout)
        try:
            return await self._exchange(ctx, run, exchange, budget)
        except BaseException:
            # Whatever ended it — a failure already settled, a cancelled client — settle once.
            await run.settle(Outcome("cancelled", detail="the request was abandoned"))
            raise

    async def _exchange(
        self, ctx: RequestContext, run: AttemptRun, exchange: Exchange, budget: float
    ) -> Reply | OpenStream:
        deployment = run.attempt.deployment
        provider = deployment.provider
        held: Held | None = None
        phase = "waiting for a free connection"
        try:
            async with asyncio.timeout(budget):
                slot = await self.pool.acquire(provider)
                phase = "waiting for response headers"
                ctx.pending = deployment
                held = await self.pool.send(provider, slot, exchange.request)
                run.attempt.status = held.response.status
                if held.response.status >= 400:
                    phase = "reading the error"
                    raw = await held.response.read()
                    held.release()
                    raise self._refused(ctx, run, exchange, held.response, raw)
                if ctx.stream:
                    phase = "waiting for the first event"
                    opened = await self._first_event(ctx, run, exchange, held)
                    held = None  # the relay owns it now
                    return opened
                phase = "reading the body"
                raw = await held.response.read()
        except TimeoutError:
            if held is not None:
                held.release()
            if phase == "waiting for a free connection":
                # The gateway's own pool is full: not the deployment's fault, so no cooldown.
                await run.settle(Outcome("skipped", detail="connection pool full"))
                raise GatewayError(
                    "unavailable",
                    f"{deployment.id}: all {provider.max_connections} connections to provider "
                    f"{provider.name!r} stayed busy",
                ) from None
            raise await run.fail(
                Outcome("timeout", detail=f"no answer within {budget:.1f}s ({phase})")
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            if held is not None:
                held.release()
            ctx.pending = None
            raise await run.fail(Outcome("connection", detail=_describe(exc))) from None
        except BaseException:
            if held is not None:
                held.release()
            raise
        held.release()
        return await self._complete(ctx, run, exchange, raw)

    def _refused(
        self,
        ctx: RequestContext,
        run: AttemptRun,
        exchange: Exchange,
        response: aiohttp.ClientResponse,
        raw: bytes,
    ) -> UpstreamError:
        """The error an upstream status means; settling it is left to the caller's handler."""
        status = response.status
        ctx.pending = None
        retry_after = retry_after_seconds(response.headers, clock=self.clock)
        error = exchange.error(ctx, status, raw, retry_after)
        if status in _CLIENT_FAULT:
            run.attempt.error = str(status)
            run.pending_outcome = Outcome("client_error", status=status)
            return error
        if status in (401, 403, 404):
            # The provider refused this deployment's credentials or model: a configuration problem the
            # client can do nothing about, and whose details (key fragments) are not the client's to see.
            log.error("deployment %s answered %d: %s", run.attempt.deployment.id, status, raw[:500])
            what = "its credentials" if status in (401, 403) else "its model name"
            detail = f"answered {status} (the provider refused {what}; see the gateway's log)"
            error = UpstreamError(502, f"{run.attempt.deployment.id} {detail}", kind="upstream")
        else:
            detail = str(status)
        kind: OutcomeKind = "rate_limited" if status == 429 else "server_error"
        run.pending_outcome = Outcome(kind, status=status, retry_after=retry_after, detail=detail)
        run.rest = True
        return error

    async def _complete(self, ctx: RequestContext, run: AttemptRun, exchange: Exchange, raw: bytes) -> Reply:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            outcome = Outcome(
                "server_error",
                status=200,
                detail="upstream answered 200 with a body that is not a JSON object",
            )
            raise await run.fail(outcome)
        usage = exchange.usage(body)
        if usage is None or (usage.input_tokens == 0 and usage.output_tokens == 0):
            ctx.usage_source = "counted"
            text = (
                openai_reply_text(body) if exchange.upstream_api == "openai" else anthropic_reply_text(body)
            )
            output = counted_output(text) if ctx.operation != "embeddings" else 0
            usage = TokenUsage(input_tokens=counted_input(ctx.operation, ctx.body), output_tokens=output)
        else:
            ctx.usage_source = "reported"
        ctx.usage = usage
        ctx.response_meta = _facts(body)
        ctx.served_by = run.attempt.deployment
        ctx.pending = None
        ctx.dropped_params = exchange.dropped
        if exchange.upstream_api != ctx.client_api:
            raw = orjson.dumps(exchange.reply(body))
        await run.settle(Outcome("ok", status=200, usage=usage))
        return Reply(status=200, body=raw)

    async def _first_event(
        self, ctx: RequestContext, run: AttemptRun, exchange: Exchange, held: Held
    ) -> OpenStream:
        """Wait for the first event before committing: an early error event still falls back."""
        parser = SSEParser()
        watcher = exchange.watcher()
        first: list[bytes] = []
        content = held.response.content
        while not first and watcher.error is None:
            data = await content.readany()
            if not data:
                for event in parser.finish():
                    first.extend(watcher.feed(event))
                if not first:
                    raise aiohttp.ClientPayloadError("the stream ended before its first event")
                break
            for event in parser.feed(data):
                first.extend(watcher.feed(event))
        if watcher.error is not None:
            message = str(watcher.error.get("message") or watcher.error.get("type") or "error event")
            held.release()
            raise await run.fail(Outcome("server_error", detail=f"stream error: {message}"))
        ctx.ttft = self.clock.monotonic() - ctx.started
        ctx.served_by = run.attempt.deployment
        ctx.dropped_params = exchange.dropped
        return OpenStream(exchange, held, parser, watcher, first, run)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "…"


def _facts(body: dict[str, Any]) -> dict[str, Any]:
    """What an answer says about itself (either API's shape), for telemetry."""
    finish: list[str] = []
    choices = body.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
            finish.append(choice["finish_reason"])
    if isinstance(body.get("stop_reason"), str):
        finish.append(body["stop_reason"])
    facts: dict[str, Any] = {"finish_reasons": finish}
    for key in ("id", "model"):
        if isinstance(body.get(key), str):
            facts[key] = body[key]
    return facts
