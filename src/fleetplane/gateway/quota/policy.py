"""L1 as a policy: admit each attempt on every quota scope at once, charge streams as they flow, settle
to the provider's reported usage, and release whatever an attempt did not use.

One reservation per attempt (id = request id + attempt number), so a denial on one deployment of a
chain lets the router try the next, and a failed attempt gives its reservation back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetplane.gateway.context import Attempt, RequestContext
from fleetplane.gateway.errors import GatewayError
from fleetplane.gateway.policy import Outcome, Policy, Skip
from fleetplane.gateway.quota.adaptive import OutputStats
from fleetplane.gateway.quota.headers import admitted_headers, denial
from fleetplane.gateway.quota.reserve import charge_of, dollars, input_tokens, output_bound, requested_output
from fleetplane.gateway.quota.rules import QuotaRule, WaitSetting
from fleetplane.gateway.quota.scopes import Attributes, Scope, scopes_for
from fleetplane.gateway.quota.waiting import WaitQueue
from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.state.quota.memory import MemoryQuotaStore
from fleetplane.state.quota.model import Admitted, Charge, Decision, Denied, Limit
from fleetplane.state.quota.store import QuotaStore, QuotaStoreUnavailable, UnknownReservation
from fleetplane.telemetry.cost import TokenUsage

log = logging.getLogger("fleetplane.gateway")

# After the shared store failed, how long to use the fail mode before trying it again.
RETRY_STORE_AFTER = 1.0


@dataclass
class Reservation:
    id: str
    store: QuotaStore
    input_tokens: int
    output_reserved: int
    output_cap: int  # the most output the request may produce (max_tokens, or the model's maximum)
    committed_output: int = 0
    renewed: float = 0.0  # monotonic time its lease was last renewed (admission, a commit, a renewal)


class QuotaPolicy(Policy):
    name = "quota"

    def __init__(
        self,
        store: QuotaStore,
        *,
        rules: Callable[[], Sequence[QuotaRule]],
        waits: Callable[[str], WaitSetting | None] = lambda key: None,
        clock: Clock = SYSTEM_CLOCK,
        replicas: int = 1,
        lease: float = 120.0,
        block: int = 32,
    ) -> None:
        self.store = store
        self.local = MemoryQuotaStore(clock=clock)  # the `open` fail mode's conservative stand-in
        self._rules = rules
        self._waits = waits
        self.clock = clock
        self.replicas = max(1, replicas)
        self.lease = lease
        self.block = block
        self.stats = OutputStats()
        self.queue = WaitQueue(clock=clock)
        self._store_down_until = float("-inf")
        # Subjects of "*" rules this replica has admitted, so `get quotas` can list their counters.
        self.seen: dict[str, set[str]] = {}
        # Admitted reservations whose attempt has not ended, by id: their leases are renewed while this
        # gateway lives (a long non-streamed call has no progress to renew it), and run out if it dies.
        self.in_flight: dict[str, Reservation] = {}
        self._renewer: asyncio.Task[None] | None = None

    # -- admission -------------------------------------------------------------------------------------

    async def before_attempt(self, ctx: RequestContext, attempt: Attempt) -> None:
        rules = self._rules()
        if not rules:
            return
        attrs = Attributes.of(ctx.tenant, ctx.group.name, attempt.deployment.id)
        scopes = scopes_for(list(rules), attrs, self.clock.now())
        if not scopes:
            return
        limits = [limit for scope in scopes for limit in scope.limits]
        strict = any(scope.rule.reservation == "strict" for scope in scopes)
        percentile = max(scope.rule.percentile for scope in scopes)
        reserved_output = output_bound(ctx, "strict" if strict else "adaptive", percentile, self.stats)
        usage = TokenUsage(input_tokens=input_tokens(ctx), output_tokens=reserved_output)
        charge = charge_of(usage, attempt.deployment)
        rid = f"{ctx.request_id}:{attempt.number}"
        cap = requested_output(ctx)
        # Known before the store is asked: if the answer is lost (a cancelled request), the admission
        # that may have happened is released instead of waiting out its lease.
        ctx.quota_reservations[attempt.number] = Reservation(
            rid, self.store, usage.input_tokens, reserved_output, cap
        )
        decision, store = await self._admit(rid, scopes, limits, charge)
        wait = self._waits(ctx.tenant.key_name)
        if isinstance(decision, Denied) and wait is not None:
            decision, store = await self._wait(ctx, rid, scopes, limits, charge, decision, wait)
        if isinstance(decision, Denied):
            ctx.quota_reservations.pop(attempt.number, None)
            raise Skip(
                f"{decision.limit.scope} {decision.limit.name}",
                retry_after=decision.retry_after,
                error=denial(decision),
            )
        reservation = Reservation(
            rid, store, usage.input_tokens, reserved_output, cap, renewed=self.clock.monotonic()
        )
        ctx.quota_reservations[attempt.number] = reservation
        self.in_flight[rid] = reservation
        self._renew_in_background()
        for scope in scopes:
            self.seen.setdefault(scope.rule.name, set()).add(scope.subject)
        ctx.limit_headers = admitted_headers(decision, limits)
        if ctx.stream:
            ctx.progress_mark = 0  # charge streams as they flow, from the first token

    async def _admit(
        self, rid: str, scopes: list[Scope], limits: list[Limit], charge: Charge
    ) -> tuple[Decision, QuotaStore]:
        if self.clock.monotonic() >= self._store_down_until:
            try:
                return await self.store.admit(rid, limits, charge, lease=self.lease), self.store
            except QuotaStoreUnavailable as exc:
                self._store_down_until = self.clock.monotonic() + RETRY_STORE_AFTER
                log.error("quota store unreachable (%s); applying each quota's fail mode", exc)
        closed = [scope for scope in scopes if scope.rule.fail_mode == "closed"]
        if closed:
            raise Skip(
                "quota store unreachable",
                error=GatewayError(
                    "unavailable",
                    f"The quota store cannot be reached and {closed[0].rule.name} fails closed; "
                    "no request is admitted until it returns.",
                    code="quota_store_unavailable",
                    retry_after=RETRY_STORE_AFTER,
                ),
            )
        local = [_share(limit, self.replicas) for limit in limits]
        return await self.local.admit(rid, local, charge, lease=self.lease), self.local

    async def _wait(
        self,
        ctx: RequestContext,
        rid: str,
        scopes: list[Scope],
        limits: list[Limit],
        charge: Charge,
        decision: Denied,
        wait: WaitSetting,
    ) -> tuple[Decision, QuotaStore]:
        end = min(ctx.deadline, self.clock.monotonic() + wait.max)
        store: QuotaStore = self.store
        result: Decision = decision
        while isinstance(result, Denied) and result.retry_after is not None:
            left = end - self.clock.monotonic()
            if left <= 0:
                break
            await self.queue.wait(
                priority=wait.priority,
                tenant=ctx.tenant.key_name,
                retry_after=result.retry_after,
                timeout=left,
            )
            result, store = await self._admit(rid, scopes, limits, charge)
        if isinstance(result, Admitted):
            self.queue.notify()  # there may be room for the next one too
        return result, store

    # -- streams ---------------------------------------------------------------------------------------

    async def on_progress(self, ctx: RequestContext, attempt: Attempt, usage: TokenUsage) -> None:
        """Charge before sending: the tokens about to reach the client are committed first; a stream
        that outgrows its reservation must be admitted for more, or it is cut here."""
        reservation = ctx.quota_reservations.get(attempt.number)
        if reservation is None:
            ctx.progress_mark = None
            return
        try:
            await self._progress(ctx, attempt, reservation, usage)
        except QuotaStoreUnavailable as exc:
            # The stream goes on; settlement retries at the end, and the lease releases what it must.
            log.warning(
                "quota store unreachable mid-stream (%s); %s no longer charged progressively",
                exc,
                reservation.id,
            )
            ctx.progress_mark = None

    async def _progress(
        self, ctx: RequestContext, attempt: Attempt, reservation: Reservation, usage: TokenUsage
    ) -> None:
        streamed = usage.output_tokens
        # One block ahead of what is sent, but never past the request's own maximum: a stream reserved
        # for its whole max_tokens (strict) needs no more, and must not be cut asking for tokens that
        # cannot come. Only an upstream that overruns the maximum is charged (and admitted) beyond it.
        ahead = max(streamed, min(streamed + self.block, reservation.output_cap))
        if ahead > reservation.output_reserved:
            grow = ahead - reservation.output_reserved
            delta = TokenUsage(output_tokens=grow)
            extra = Charge(tokens=grow, output_tokens=grow, dollars=dollars(delta, attempt.deployment))
            try:
                decision = await reservation.store.extend(reservation.id, extra)
            except UnknownReservation:
                # Its lease ran out (a stall longer than the lease): what it committed stays charged.
                log.warning("quota reservation %s expired mid-stream; no longer tracked", reservation.id)
                ctx.progress_mark = None
                return
            if isinstance(decision, Denied):
                error = denial(decision)
                error.message = "The stream was stopped: " + error.message
                raise error
            reservation.output_reserved += grow
        committed = TokenUsage(input_tokens=reservation.input_tokens, output_tokens=ahead)
        await reservation.store.commit(
            reservation.id, charge_of(committed, attempt.deployment), lease=self.lease
        )
        reservation.committed_output = ahead
        reservation.renewed = self.clock.monotonic()
        ctx.progress_mark = ahead

    # -- settlement ------------------------------------------------------------------------------------

    async def after_attempt(self, ctx: RequestContext, attempt: Attempt, outcome: Outcome) -> None:
        reservation = ctx.quota_reservations.pop(attempt.number, None)
        if reservation is None:
            return
        self.in_flight.pop(reservation.id, None)
        usage = outcome.usage
        if usage is None and outcome.kind == "cancelled" and ctx.pending is attempt.deployment:
            # Abandoned after the upstream had the prompt (a client that left before the first token):
            # the provider bills the input, and the ledger records it; the counters hold the same.
            usage = TokenUsage(input_tokens=reservation.input_tokens)
        try:
            if usage is not None:
                await reservation.store.settle(reservation.id, charge_of(usage, attempt.deployment))
                if outcome.kind == "ok":
                    self.stats.observe(ctx.group.name, ctx.tenant.agent, usage.output_tokens)
            else:
                await reservation.store.release(reservation.id)
        except QuotaStoreUnavailable as exc:
            # The lease expires on its own and gives back what was not committed.
            log.warning(
                "could not settle quota reservation %s (%s); its lease will release it", reservation.id, exc
            )
        self.queue.notify()

    # -- leases ----------------------------------------------------------------------------------------

    def _renew_in_background(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew_forever(), name="fleetplane-quota-renew"
            )

    async def _renew_forever(self) -> None:
        while True:
            await self.clock.sleep(self.lease / 3)
            try:
                await self.renew()
            except Exception as exc:  # the next round tries again
                log.warning("quota lease renewal failed: %s", exc)

    async def renew(self) -> int:
        """Renew the lease of every reservation in flight here that went a third of a lease without one
        (a stream's progress commits renew it too); returns how many were renewed."""
        now = self.clock.monotonic()
        due = [r for r in self.in_flight.values() if now - r.renewed >= self.lease / 3]
        renewed = 0
        away: set[int] = set()  # stores that failed this round: one warning, not one per reservation
        for reservation in due:
            if id(reservation.store) in away:
                continue
            try:
                # Committing nothing more renews the lease and changes no amount (commits never go down).
                alive = await reservation.store.commit(reservation.id, Charge(), lease=self.lease)
            except QuotaStoreUnavailable as exc:
                away.add(id(reservation.store))
                log.warning("quota store unreachable (%s); leases not renewed this round", exc)
                continue
            if alive:
                reservation.renewed = now
                renewed += 1
            else:  # ended already (its lease ran out while the store was away): nothing left to renew
                self.in_flight.pop(reservation.id, None)
        return renewed

    async def expire(self) -> int:
        """Give back what expired leases held (run periodically by every replica; idempotent)."""
        expired = await self.local.expire()
        try:
            expired += await self.store.expire()
        except QuotaStoreUnavailable as exc:
            log.warning("could not expire quota leases: %s", exc)
        if expired:
            self.queue.notify(expired)
        return expired

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        await self.local.close()
        await self.store.close()


def _share(limit: Limit, replicas: int) -> Limit:
    """This replica's conservative part of a limit while the shared store is away."""
    from dataclasses import replace

    return replace(limit, key="local/" + limit.key, limit=limit.limit / replicas)
