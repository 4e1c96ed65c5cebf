"""The policy chain: every gateway layer is a `Policy` with the same hooks around a request and around
each attempt on a deployment, composed in one place (`PolicyChain`), in the order of the spine:

    on_request      auth'd request arrives      (L2 agent breakers, cache lookup; may answer or refuse)
    before_attempt  before each deployment try  (L1 admission; may `Skip` this deployment)
    on_progress     as a stream's tokens arrive (L1 progressive charging; may cut the stream)
    after_attempt   after each try, always      (L1 reconciliation, breaker error counts)
    on_exhausted    every deployment failed     (cache as the last resort)
    on_complete     the client has its answer   (cache store, cost velocity, breaker probes)
    on_error        the request ended in an error (breaker probes)

A reader looking for where a 429 is decided reads the chain's list in `gateway/app.py` and one policy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from fleetplane.gateway.context import Attempt, Reply, RequestContext
from fleetplane.gateway.errors import GatewayError
from fleetplane.telemetry.cost import TokenUsage

OutcomeKind = Literal[
    "ok", "rate_limited", "server_error", "timeout", "connection", "client_error", "skipped", "cancelled"
]

RETRYABLE: frozenset[str] = frozenset({"rate_limited", "server_error", "timeout", "connection", "skipped"})


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    status: int | None = None
    usage: TokenUsage | None = None
    retry_after: float | None = None
    detail: str | None = None


class Skip(Exception):
    """A policy passes over one deployment; the router tries the next (e.g. its quota is spent)."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, error: GatewayError | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        # What the client is told if no deployment is left to try.
        self.error = error


class Policy:
    """No-op hooks; a layer overrides the ones it needs."""

    name = "policy"

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        return None

    async def before_attempt(self, ctx: RequestContext, attempt: Attempt) -> None:
        return None

    async def on_progress(self, ctx: RequestContext, attempt: Attempt, usage: TokenUsage) -> None:
        return None

    async def after_attempt(self, ctx: RequestContext, attempt: Attempt, outcome: Outcome) -> None:
        return None

    async def on_exhausted(self, ctx: RequestContext) -> Reply | None:
        return None

    async def on_complete(self, ctx: RequestContext, reply: Reply | None) -> None:
        return None

    async def on_error(self, ctx: RequestContext, error: GatewayError) -> None:
        return None


class PolicyChain:
    def __init__(self, policies: list[Policy]) -> None:
        self.policies = list(policies)
        self._progress = [p for p in self.policies if type(p).on_progress is not Policy.on_progress]

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        for policy in self.policies:
            reply = await policy.on_request(ctx)
            if reply is not None:
                return reply
        return None

    async def before_attempt(self, ctx: RequestContext, attempt: Attempt) -> list[Policy]:
        """Run every admission; if one skips, those already admitted are told the attempt was skipped."""
        admitted: list[Policy] = []
        for policy in self.policies:
            try:
                await policy.before_attempt(ctx, attempt)
            except Skip as skip:
                await self.after_attempt(ctx, attempt, Outcome("skipped", detail=skip.reason), admitted)
                raise
            except BaseException:
                # Cancelled or failed half-way: those that admitted, and the one interrupted (it may have
                # taken something before its answer was lost), must give back what they took.
                await asyncio.shield(
                    self.after_attempt(ctx, attempt, Outcome("cancelled"), [*admitted, policy])
                )
                raise
            admitted.append(policy)
        return admitted

    @property
    def watches_progress(self) -> bool:
        return bool(self._progress)

    async def on_progress(self, ctx: RequestContext, attempt: Attempt, usage: TokenUsage) -> None:
        for policy in self._progress:
            await policy.on_progress(ctx, attempt, usage)

    async def after_attempt(
        self, ctx: RequestContext, attempt: Attempt, outcome: Outcome, admitted: list[Policy] | None = None
    ) -> None:
        for policy in reversed(admitted if admitted is not None else self.policies):
            await policy.after_attempt(ctx, attempt, outcome)

    async def on_exhausted(self, ctx: RequestContext) -> Reply | None:
        for policy in self.policies:
            reply = await policy.on_exhausted(ctx)
            if reply is not None:
                return reply
        return None

    async def on_complete(self, ctx: RequestContext, reply: Reply | None) -> None:
        for policy in reversed(self.policies):
            await policy.on_complete(ctx, reply)

    async def on_error(self, ctx: RequestContext, error: GatewayError) -> None:
        for policy in reversed(self.policies):
            await policy.on_error(ctx, error)
