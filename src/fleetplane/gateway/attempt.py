"""One attempt's settlement: whatever ends it — an answer, a failure, a cancelled client, a stream that
breaks or completes — the policies hear `after_attempt` exactly once, and a failed deployment rests.

Settlement is shielded from cancellation: a client that leaves while a reservation is being reconciled
cannot leave it half done.
"""

from __future__ import annotations

import asyncio

from fleetplane.gateway.context import Attempt, RequestContext
from fleetplane.gateway.cooldown import Cooldowns
from fleetplane.gateway.errors import GatewayError
from fleetplane.gateway.policy import Outcome, Policy, PolicyChain

# Outcomes that say the deployment, not the request, failed: it rests before anyone tries it again.
RESTING = frozenset({"rate_limited", "server_error", "timeout", "connection"})


class AttemptRun:
    def __init__(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        admitted: list[Policy],
        chain: PolicyChain,
        cooldowns: Cooldowns,
    ) -> None:
        self.ctx = ctx
        self.attempt = attempt
        self.admitted = admitted
        self.chain = chain
        self.cooldowns = cooldowns
        # What an upstream status already decided, should the attempt end by an exception.
        self.pending_outcome: Outcome | None = None
        self.rest = False
        self.settled = False

    async def settle(self, outcome: Outcome) -> None:
        if self.settled:
            return
        self.settled = True
        if outcome.kind == "cancelled" and self.pending_outcome is not None:
            outcome = self.pending_outcome
        if outcome.kind != "ok" and self.attempt.error is None:
            self.attempt.error = outcome.detail or outcome.kind
        if outcome.kind not in ("ok", "cancelled"):
            self.ctx.pending = None  # it answered (with an error): nothing more is billed for it
        self.attempt.retry_after = outcome.retry_after
        await asyncio.shield(self._settle(outcome))

    async def _settle(self, outcome: Outcome) -> None:
        if self.rest or outcome.kind in RESTING:
            seconds = outcome.retry_after if outcome.retry_after is not None else self.ctx.group.cooldown
            await self.cooldowns.mark(self.attempt.deployment.id, seconds)
        await self.chain.after_attempt(self.ctx, self.attempt, outcome, self.admitted)

    async def fail(self, outcome: Outcome) -> GatewayError:
        """Settle a failure and return what the chain sees: this deployment is unavailable."""
        await self.settle(outcome)
        return GatewayError("unavailable", f"{self.attempt.deployment.id}: {self.attempt.error}")
