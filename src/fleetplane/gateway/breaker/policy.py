"""L2 as a policy: refuse while a breaker is open, watch every request for the conditions that trip one.

Agent-side breakers (cost velocity, repeats, context growth) are checked on arrival: an open breaker,
or a request that is itself the N+1th repeat or an oversized turn, gets a 429 naming the breaker and its
reason. Each hook makes one store call for all its breakers (one script call on Redis): the arrival
(every agent breaker's check and its repeat, size and growth observations), each attempt's deployment
checks, and each attempt's records (its error-rate samples, its cost, its deployment probes).
Deployment breakers (upstream error rate) are checked per attempt: an open one is skipped like a
resting deployment, and its trip also rests the deployment in the L3 cooldowns. A store that cannot be
reached fails open: breakers protect budgets, they must not take the gateway down with them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from fleetplane.gateway.breaker.fingerprint import conversation_id, request_fingerprint
from fleetplane.gateway.breaker.rules import CONTEXT_GROWTH, CONTEXT_SIZE, COST, ERRORS, REPEATS, BreakerRule
from fleetplane.gateway.context import Attempt, Reply, RequestContext
from fleetplane.gateway.cooldown import Cooldowns
from fleetplane.gateway.errors import GatewayError
from fleetplane.gateway.policy import Outcome, Policy, Skip
from fleetplane.gateway.quota.reserve import dollars, input_tokens
from fleetplane.state.breaker import (
    Arrived,
    BreakerSpec,
    BreakerStore,
    BreakerStoreUnavailable,
    Step,
    Verdict,
)
from fleetplane.state.kv import KV

log = logging.getLogger("fleetplane.gateway")
T = TypeVar("T")

# How long a conversation's last input size is remembered for the context-growth trigger.
CONVERSATION_TTL = 3600.0

# After the store failed to answer, it is not asked again for this long (breakers fail open meanwhile):
# an outage costs a request nothing rather than a timeout per hook, and the first requests after Redis
# returns are not judged by counters that missed everything while it was away (the gateway KV rests alike).
REST_AFTER_FAILURE = 3.0

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
    ) -> None:
        self.store = store
        self.kv = kv
        self._rest_until = float("-inf")
        self.cooldowns = cooldowns
        self._rules = rules
        self._watches: dict[str, _Watch] = {}

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        if time.monotonic() < self._rest_until:
            raise BreakerStoreUnavailable("resting after a failure")
        try:
            return await call()
        except BreakerStoreUnavailable:
            self._rest_until = time.monotonic() + REST_AFTER_FAILURE
            raise

    async def _arrive(self, items: Sequence[tuple[BreakerSpec, Sequence[Step]]]) -> list[Arrived]:
        return await self._guarded(lambda: self.store.arrive(items))

    async def _record(self, items: Sequence[tuple[BreakerSpec, Sequence[Step]]]) -> list[list[Verdict]]:
        return await self._guarded(lambda: self.store.record(items))

    # -- agent side ------------------------------------------------------------------------------------

    def _subject(self, rule: BreakerRule, ctx: RequestContext) -> str | None:
        tenant = ctx.tenant
        value = {"agent": tenant.agent, "key": tenant.key_name, "team": tenant.team}.get(rule.level)
        return rule.subject(value)

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        watch = _Watch()
        items: list[tuple[BreakerRule, str, BreakerSpec, list[Step]]] = []
        for rule in self._rules():
            if not rule.agent_side:
                continue
            subject = self._subject(rule, ctx)
            if subject is not None:
                spec = rule.engine_spec(subject)
                items.append((rule, subject, spec, self._arrival_steps(rule, ctx)))
        if not items:
            return None
        try:
            answers = await self._arrive([(spec, steps) for _, _, spec, steps in items])
        except BreakerStoreUnavailable as exc:
            log.warning("breaker state unreachable (%s); %d breakers not checked", exc, len(items))
            return None
        # The answers stop at the first refusal: the breakers after it were neither checked nor observed.
        for (rule, subject, spec, _), answer in zip(items, answers, strict=False):
            if answer.probe:
                watch.probes.append(spec)
            if not answer.verdict.admitted:
                # Refused before it was sent, so it spent nothing and grew nothing: for the other
                # breakers whose probe it held it showed no condition (as in on_error). This rule's own
                # probe, if its observation just tripped, was already failed by the engine.
                await self._report_probes(watch, good=True)
                raise _refusal(rule, subject, answer.verdict)
            watch.specs.append((rule, spec))
        if watch.specs:
            self._watches[ctx.request_id] = watch
        return None

    def _arrival_steps(self, rule: BreakerRule, ctx: RequestContext) -> list[Step]:
        """The conditions a request shows before it is sent: a repeat, an oversized or fast-growing turn."""
        steps: list[Step] = []
        s = rule.spec
        if s.repeats is not None:
            fingerprint = request_fingerprint(ctx.group.name, ctx.body)
            steps.append(Step("count", REPEATS, member=fingerprint, ttl=s.repeats.window))
        if s.context_growth is not None and ctx.operation != "embeddings":
            size = float(input_tokens(ctx))
            if s.context_growth.max_input_tokens is not None:
                steps.append(Step("observe", CONTEXT_SIZE, size))
            if s.context_growth.max_growth_per_turn is not None:
                conversation = conversation_id(
                    ctx.group.name, ctx.body, ctx.headers.get("x-fleetplane-conversation-id")
                )
                steps.append(Step("growth", CONTEXT_GROWTH, size, member=conversation, ttl=CONVERSATION_TTL))
        return steps

    async def on_complete(self, ctx: RequestContext, reply: Reply | None) -> None:
        watch = self._watches.pop(ctx.request_id, None)
        if watch is not None:
            # Its cost was observed with its attempt's records (after_attempt).
            await self._report_probes(watch, good=not watch.tripped)

    async def on_error(self, ctx: RequestContext, error: GatewayError) -> None:
        watch = self._watches.pop(ctx.request_id, None)
        if watch is not None:
            # The request failed elsewhere (an upstream, a quota): it did not show the condition again.
            await self._report_probes(watch, good=True)

    async def _report_probes(self, watch: _Watch, *, good: bool) -> None:
        if not watch.probes:
            return
        try:
            await self._record([(spec, [Step("probe_done", good=good)]) for spec in watch.probes])
        except BreakerStoreUnavailable as exc:
            log.warning("breaker store unreachable (%s); %d probes not reported", exc, len(watch.probes))
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
        found = self._deployment_rules(attempt)
        if not found:
            return
        try:
            answers = await self._arrive([(spec, []) for _, spec in found])
        except BreakerStoreUnavailable:
            return
        for (rule, spec), answer in zip(found, answers, strict=False):
            if answer.probe:
                ctx.breaker_probes.setdefault(attempt.number, []).append(spec)
            verdict = answer.verdict
            if not verdict.admitted:
                raise Skip(
                    f"breaker {rule.name} open",
                    retry_after=verdict.retry_after,
                    error=_refusal(rule, attempt.deployment.id, verdict, deployment=True),
                )

    async def after_attempt(self, ctx: RequestContext, attempt: Attempt, outcome: Outcome) -> None:
        """One store call for everything the attempt showed: each deployment breaker's error-rate sample,
        its deployment probes' reports and, when it answered, the request's cost for its agent breakers."""
        probes = ctx.breaker_probes.pop(attempt.number, [])
        if outcome.kind == "skipped":
            # Another policy passed over the attempt (a tenant's spent quota, the gateway's own full
            # connection pool): the deployment was never called, so its probe proved nothing either way.
            # Judging it bad would let one tenant over budget re-open a deployment for everyone; it is
            # left unreported, and its lease (the engine's probe_timeout) gives the slot back.
            return
        items: list[tuple[BreakerSpec, list[Step]]] = []
        if outcome.kind in ("cancelled", "client_error"):
            good = True
        else:
            bad = outcome.kind in _BAD
            good = not bad
            for _, spec in self._deployment_rules(attempt):
                items.append((spec, [Step("observe", ERRORS, 1.0, bad=bad, probe=spec in probes)]))
        for spec in probes:
            items.append((spec, [Step("probe_done", good=good)]))
        watch = self._watches.get(ctx.request_id)
        cost_from = len(items)
        if watch is not None and outcome.kind == "ok" and outcome.usage is not None:
            spend = dollars(outcome.usage, attempt.deployment)
            for rule, spec in watch.specs:
                if rule.spec.cost_velocity is not None and spend > 0:
                    items.append((spec, [Step("observe", COST, spend, probe=spec in watch.probes)]))
        if not items:
            return
        try:
            verdicts = await self._record(items)
        except BreakerStoreUnavailable as exc:
            log.warning("breaker store unreachable (%s); attempt %d not recorded", exc, attempt.number)
            return
        for i, ((spec, _), [verdict]) in enumerate(zip(items, verdicts, strict=True)):
            if i >= cost_from:
                assert watch is not None
                watch.tripped |= verdict.status == "open"
            elif verdict.status == "open" and verdict.retry_after:
                # The deployment rests as long as its breaker is open, on every replica.
                await self.cooldowns.mark(spec.key.rsplit("deployment:", 1)[-1], verdict.retry_after)
