"""L2 as a policy: refuse while a breaker is open, watch every request for the conditions that trip one.

Agent-side breakers (cost velocity, repeats, context growth) are checked on arrival: an open breaker,
or a request that is itself the N+1th repeat or an oversized turn, gets a 429 naming the breaker and its
reason. Deployment breakers (upstream error rate) are checked per attempt: an open one is skipped like a
resting deployment, and its trip also rests the deployment in the L3 cooldowns. A store that cannot be
reached fails open: breakers protect budgets, they must not take the gateway down with them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fleetplane.gateway.breaker.fingerprint import conversation_id, request_fingerprint
from fleetplane.gateway.breaker.rules import CONTEXT_GROWTH, CONTEXT_SIZE, COST, ERRORS, REPEATS, BreakerRule
from fleetplane.gateway.context import Attempt, Reply, RequestContext
from fleetplane.gateway.cooldown import Cooldowns
from fleetplane.gateway.errors import GatewayError
from fleetplane.gateway.policy import Outcome, Policy, Skip
from fleetplane.gateway.quota.reserve import dollars, input_tokens
from fleetplane.state.breaker import BreakerSpec, BreakerStore, BreakerStoreUnavailable, Verdict
from fleetplane.state.clock import SYSTEM_CLOCK
from fleetplane.state.kv import KV, KVUnavailable, MemoryKV

log = logging.getLogger("fleetplane.gateway")

# In process, the repeat counts (one per request fingerprint, for the trigger's window) and conversation
# sizes (one per conversation, for CONVERSATION_TTL) live in an LRU of their own, at most MAX_TRACKED
# entries (~450 bytes each): every request of an agent with unique bodies adds one of each, and in the
# gateway's shared KV they would crowd out the cooldown marks. A fingerprint is touched on every repeat,
# so the LRU keeps a loop that repeats at least once per MAX_TRACKED / 2 other requests (5,000: 25 s
# at 200 req/s); a conversation forgotten for space has its next turn measured as a first turn (no
# growth), and a forgotten count starts over: both err open.
MAX_TRACKED = 10_000
TRACKED_BYTES = 8 * 2**20
CONVERSATION_TTL = 3600.0

# What counts against a deployment's error rate (a 429 is its limits speaking, and cools it down instead).
_BAD = frozenset({"server_error", "timeout", "connection"})


@dataclass
class _Watch:
    """The breakers one request answers to, and the probes it must report."""

    specs: list[tuple[BreakerRule, BreakerSpec]] = field(default_factory=list)
    probes: list[BreakerSpec] = field(default_factory=list)
    tripped: bool = False


def _refusal(rule: BreakerRule, subject: str, verdict: Verdict, *, deployment: bool = False) -> GatewayError:
    wait = f" Retry in {math.ceil(verdict.retry_after)}s." if verdict.retry_after else ""
    what = "deployment" if deployment else rule.level
    state = "half-open and probing" if verdict.status == "half_open" else "open"
    message = (
        f"Circuit breaker {rule.name} is {state} for {what} {subject}: {verdict.reason or 'tripped'}.{wait}"
    )
    headers = {"x-fleetplane-breaker": rule.name, "x-fleetplane-breaker-trigger": verdict.trigger or ""}
    return GatewayError(
        "unavailable" if deployment else "rate_limit",
        message,
        code="breaker_open",
        headers=headers,
        retry_after=verdict.retry_after,
    )


class BreakerPolicy(Policy):
    name = "breaker"

    def __init__(
        self,
        store: BreakerStore,
        kv: KV,
        cooldowns: Cooldowns,
        *,
        rules: Callable[[], Sequence[BreakerRule]],
        tracked: KV | None = None,
    ) -> None:
        self.store = store
        self.kv = kv
        if tracked is None and isinstance(kv, MemoryKV):
            # The same clock as the gateway's KV, so tests that move time move both.
            clock = getattr(kv, "_clock", SYSTEM_CLOCK)
            tracked = MemoryKV(clock=clock, max_entries=MAX_TRACKED, max_bytes=TRACKED_BYTES)
        self.tracked: KV = tracked if tracked is not None else kv
        self.cooldowns = cooldowns
        self._rules = rules
        self._watches: dict[str, _Watch] = {}

    # -- agent side ------------------------------------------------------------------------------------

    def _subject(self, rule: BreakerRule, ctx: RequestContext) -> str | None:
        tenant = ctx.tenant
        value = {"agent": tenant.agent, "key": tenant.key_name, "team": tenant.team}.get(rule.level)
        return rule.subject(value)

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        watch = _Watch()
        for rule in self._rules():
            if not rule.agent_side:
                continue
            subject = self._subject(rule, ctx)
            if subject is None:
                continue
            spec = rule.engine_spec(subject)
            try:
                verdict = await self.store.check(spec)
                if verdict.admitted and verdict.probe:
                    watch.probes.append(spec)
                if verdict.admitted:
                    verdict = await self._observe_arrival(rule, spec, ctx, probe=verdict.probe)
            except (BreakerStoreUnavailable, KVUnavailable) as exc:
                log.warning("breaker state unreachable (%s); %s not checked", exc, rule.name)
                continue
            if not verdict.admitted:
                # Refused before it was sent, so it spent nothing and grew nothing: for the other
                # breakers whose probe it held it showed no condition (as in on_error). This rule's own
                # probe, if its observation just tripped, was already failed by the engine.
                await self._report_probes(watch, good=True)
                raise _refusal(rule, subject, verdict)
            watch.specs.append((rule, spec))
        if watch.specs:
            self._watches[ctx.request_id] = watch
        return None

    async def _observe_arrival(
        self, rule: BreakerRule, spec: BreakerSpec, ctx: RequestContext, *, probe: bool
    ) -> Verdict:
        """The conditions a request shows before it is sent: a repeat, an oversized or fast-growing turn."""
        verdict = Verdict(status="closed", admitted=True)
        s = rule.spec
        if s.repeats is not None:
            fingerprint = request_fingerprint(ctx.group.name, ctx.body)
            count = await self.tracked.incr(f"repeats:{spec.key}:{fingerprint}", s.repeats.window)
            verdict = await self.store.observe(spec, REPEATS, float(count), probe=probe)
            if not verdict.admitted:
                return verdict
        if s.context_growth is not None and ctx.operation != "embeddings":
            size = input_tokens(ctx)
            if s.context_growth.max_input_tokens is not None:
                verdict = await self.store.observe(spec, CONTEXT_SIZE, float(size), probe=probe)
                if not verdict.admitted:
                    return verdict
            if s.context_growth.max_growth_per_turn is not None:
                conversation = conversation_id(
                    ctx.group.name, ctx.body, ctx.headers.get("x-fleetplane-conversation-id")
                )
                key = f"context:{spec.key}:{conversation}"
                previous = await self.tracked.get(key)
                await self.tracked.set(key, str(size).encode(), CONVERSATION_TTL)
                if previous is not None:
                    growth = max(0, size - int(previous))
                    verdict = await self.store.observe(spec, CONTEXT_GROWTH, float(growth), probe=probe)
        return verdict

    async def on_complete(self, ctx: RequestContext, reply: Reply | None) -> None:
        watch = self._watches.pop(ctx.request_id, None)
        if watch is None:
            return
        served = ctx.served_by
        spend = dollars(ctx.usage, served) if ctx.usage is not None and served is not None else 0.0
        try:
            for rule, spec in watch.specs:
                if rule.spec.cost_velocity is not None and spend > 0:
                    verdict = await self.store.observe(spec, COST, spend, probe=spec in watch.probes)
                    watch.tripped |= verdict.status == "open"
        except BreakerStoreUnavailable as exc:
            log.warning("breaker store unreachable (%s); cost not observed", exc)
        await self._report_probes(watch, good=not watch.tripped)

    async def on_error(self, ctx: RequestContext, error: GatewayError) -> None:
        watch = self._watches.pop(ctx.request_id, None)
        if watch is not None:
            # The request failed elsewhere (an upstream, a quota): it did not show the condition again.
            await self._report_probes(watch, good=True)

    async def _report_probes(self, watch: _Watch, *, good: bool) -> None:
        for spec in watch.probes:
            try:
                await self.store.probe_done(spec, good=good)
            except BreakerStoreUnavailable as exc:
                log.warning("breaker store unreachable (%s); probe of %s not reported", exc, spec.key)
        watch.probes.clear()

    # -- deployments -----------------------------------------------------------------------------------

    def _deployment_rules(self, attempt: Attempt) -> list[tuple[BreakerRule, BreakerSpec]]:
        found = []
        for rule in self._rules():
            if rule.agent_side:
                continue
            subject = rule.subject(attempt.deployment.id)
            if subject is not None:
                found.append((rule, rule.engine_spec(subject)))
        return found

    async def before_attempt(self, ctx: RequestContext, attempt: Attempt) -> None:
        for rule, spec in self._deployment_rules(attempt):
            try:
                verdict = await self.store.check(spec)
            except BreakerStoreUnavailable:
                continue
            if not verdict.admitted:
                raise Skip(
                    f"breaker {rule.name} open",
                    retry_after=verdict.retry_after,
                    error=_refusal(rule, attempt.deployment.id, verdict, deployment=True),
                )
            if verdict.probe:
                attempt_probes = ctx.breaker_probes.setdefault(attempt.number, [])
                attempt_probes.append(spec)

    async def after_attempt(self, ctx: RequestContext, attempt: Attempt, outcome: Outcome) -> None:
        if outcome.kind == "skipped":
            # Another policy passed over the attempt (a tenant's spent quota, the gateway's own full
            # connection pool): the deployment was never called, so its probe proved nothing either way.
            # Judging it bad would let one tenant over budget re-open a deployment for everyone; it is
            # left unreported, and its lease (the engine's probe_timeout) gives the slot back.
            ctx.breaker_probes.pop(attempt.number, None)
            return
        if outcome.kind in ("cancelled", "client_error"):
            for spec in ctx.breaker_probes.pop(attempt.number, []):
                await self._probe(spec, good=True)
            return
        bad = outcome.kind in _BAD
        probes = ctx.breaker_probes.pop(attempt.number, [])
        for _, spec in self._deployment_rules(attempt):
            try:
                verdict = await self.store.observe(spec, ERRORS, 1.0, bad=bad, probe=spec in probes)
            except BreakerStoreUnavailable:
                continue
            if verdict.status == "open" and verdict.retry_after:
                # The deployment rests as long as its breaker is open, on every replica.
                await self.cooldowns.mark(attempt.deployment.id, verdict.retry_after)
        for spec in probes:
            await self._probe(spec, good=not bad)

    async def _probe(self, spec: BreakerSpec, *, good: bool) -> None:
        try:
            verdict = await self.store.probe_done(spec, good=good)
        except BreakerStoreUnavailable:
            return
        if verdict.status == "open" and verdict.retry_after:
            await self.cooldowns.mark(spec.key.rsplit("deployment:", 1)[-1], verdict.retry_after)
