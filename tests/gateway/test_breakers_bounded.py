"""L2 in process keeps a bounded state however many distinct requests pass: the repeat counts and
conversation sizes live in the breaker store's own LRU (at most MAX_COUNTERS entries, each for its window
or TTL), and nothing is kept per request once it ended. An injected clock, exact counts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from fleetplane.gateway.breaker.policy import CONVERSATION_TTL, BreakerPolicy
from fleetplane.gateway.breaker.rules import BreakerRule
from fleetplane.gateway.cooldown import Cooldowns
from fleetplane.manifests.breaker import BreakerSpec
from fleetplane.state.breaker.counters import MAX_COUNTERS
from fleetplane.state.breaker.memory import MemoryBreakerStore
from fleetplane.state.clock import ManualClock
from fleetplane.state.kv import MemoryKV

GUARD = BreakerSpec.model_validate(
    {
        "target": {"agent": "*"},
        "repeats": {"count": 5, "window": 60},
        "costVelocity": {"usdPerMinute": 100000},
        "contextGrowth": {"maxInputTokens": 100000, "maxGrowthPerTurn": 30000},
        "openFor": 30,
    }
)


def _ctx(n: int) -> Any:
    body = {"model": "m", "messages": [{"role": "user", "content": f"unique question {n}"}]}
    return SimpleNamespace(
        request_id=f"req-{n}",
        operation="chat",
        body=body,
        headers={},
        tenant=SimpleNamespace(agent="load", key_name="bench", team="bench"),
        group=SimpleNamespace(name="m"),
        input_estimate=10,
        served_by=None,
        usage=None,
    )


def _policy(clock: ManualClock, max_counters: int = MAX_COUNTERS) -> tuple[BreakerPolicy, MemoryKV]:
    kv = MemoryKV(clock=clock)
    rule = BreakerRule("Breaker/agent-guard", "agent", "*", GUARD)
    store = MemoryBreakerStore(clock=clock, max_counters=max_counters)
    policy = BreakerPolicy(store, kv, Cooldowns(kv), rules=lambda: [rule])
    return policy, kv


def _counters(policy: BreakerPolicy) -> int:
    assert isinstance(policy.store, MemoryBreakerStore)
    return len(policy.store.counters)


def test_unique_requests_leave_a_bounded_state_in_process() -> None:
    async def run() -> None:
        clock = ManualClock()
        policy, kv = _policy(clock)
        for n in range(MAX_COUNTERS):  # two entries each: twice the cap
            ctx = _ctx(n)
            assert await policy.on_request(ctx) is None
            await policy.on_complete(ctx, None)
            clock.advance(0.001)
        # One repeat count and one conversation size per request, capped; nothing per request left.
        assert _counters(policy) == MAX_COUNTERS
        assert policy._watches == {}
        assert len(kv) == 0  # the gateway's shared KV (cooldowns) got none of it
        # Past the repeats window the counts go; past the conversation TTL the sizes go too.
        clock.advance(CONVERSATION_TTL + 1)
        ctx = _ctx(-1)
        await policy.on_request(ctx)
        await policy.on_complete(ctx, None)
        assert _counters(policy) == 2

    asyncio.run(run())


def test_a_loop_is_not_forgotten_among_many_unique_requests() -> None:
    async def run() -> None:
        clock = ManualClock()
        cap = 100
        policy, _ = _policy(clock, cap)
        for n in range(1, 6):
            # The looping request is sent again after as many unique ones as the LRU can take besides
            # it (two entries each, the loop's own two kept): it is touched each time, so never evicted.
            for m in range(cap // 2 - 1):
                other = _ctx(n * cap + m)
                await policy.on_request(other)
                await policy.on_complete(other, None)
            loop = _ctx(0)
            assert await policy.on_request(loop) is None, n
            await policy.on_complete(loop, None)
            clock.advance(1.0)
        assert _counters(policy) == cap
        refused = _ctx(0)
        try:
            await policy.on_request(refused)
        except Exception as exc:  # the 6th identical request within the window trips the breaker
            assert getattr(exc, "code", None) == "breaker_open"
            assert "the same request 6 times in 1min > 5" in str(getattr(exc, "message", ""))
        else:
            raise AssertionError("the 6th repeat was admitted")

    asyncio.run(run())


def test_adaptive_output_stats_keep_at_most_max_keys_pairs() -> None:
    from fleetplane.gateway.quota.adaptive import OutputStats

    stats = OutputStats(keep=3, min_samples=1, max_keys=2)
    for agent in ("a", "b", "c"):
        for tokens in (10, 20, 30, 40):
            stats.observe("m", agent, tokens)
    assert len(stats) == 2
    assert stats.percentile("m", "a", 0.99) is None  # learned first, forgotten first
    assert stats.percentile("m", "c", 0.99) == 40 and stats.percentile("m", "c", 0.01) == 20
