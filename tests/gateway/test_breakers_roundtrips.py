"""L2 on Redis costs one script call per hook, whatever the number of breakers and triggers: the arrival
(every agent breaker's check with its repeat count, context size and growth), each attempt's deployment
checks, and each attempt's records (error-rate sample, cost). Counted on the Redis client itself."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from fleetplane.gateway.breaker.policy import BreakerPolicy
from fleetplane.gateway.breaker.rules import BreakerRule
from fleetplane.gateway.cooldown import Cooldowns
from fleetplane.gateway.errors import GatewayError
from fleetplane.gateway.policy import Outcome
from fleetplane.manifests.breaker import BreakerSpec
from fleetplane.state.breaker.lua import SCRIPT
from fleetplane.state.breaker.redis_store import RedisBreakerStore
from fleetplane.state.kv import MemoryKV
from fleetplane.telemetry.cost import Rates, TokenUsage

AGENT = BreakerSpec.model_validate(
    {
        "target": {"agent": "*"},
        "repeats": {"count": 2, "window": 60},
        "costVelocity": {"usdPerMinute": 100000},
        "contextGrowth": {"maxInputTokens": 100000, "maxGrowthPerTurn": 30000},
        "openFor": 30,
    }
)
KEY = BreakerSpec.model_validate({"target": {"key": "bench"}, "repeats": {"count": 50}, "openFor": 30})
ERRORS = BreakerSpec.model_validate(
    {"target": {"deployment": "sim/m"}, "errorRate": {"threshold": 0.5, "minRequests": 20}, "openFor": 30}
)
RULES = [
    BreakerRule("Breaker/agent-guard", "agent", "*", AGENT),
    BreakerRule("Breaker/key-guard", "key", "bench", KEY),
    BreakerRule("Breaker/upstream-errors", "deployment", "sim/m", ERRORS),
]
DEPLOYMENT = SimpleNamespace(
    id="sim/m",
    model="m",
    rates=Rates(input=Decimal(1), output=Decimal(2)),
    provider=SimpleNamespace(price_provider=None),
)


def _ctx(n: int, text: str) -> Any:
    return SimpleNamespace(
        request_id=f"req-{n}",
        operation="chat",
        body={"model": "m", "messages": [{"role": "user", "content": text}]},
        headers={"x-fleetplane-conversation-id": "c1"},
        tenant=SimpleNamespace(agent="load", key_name="bench", team="bench"),
        group=SimpleNamespace(name="m"),
        input_estimate=10 * n,
        breaker_probes={},
    )


class Counted:
    """Every command the store's client sends (a script call is one EVALSHA)."""

    def __init__(self, store: RedisBreakerStore) -> None:
        self.commands: list[str] = []
        client = store._redis
        original = client.execute_command

        async def execute(*args: Any, **options: Any) -> Any:
            self.commands.append(str(args[0]))
            return await original(*args, **options)

        client.execute_command = execute  # type: ignore[method-assign]

    def take(self) -> list[str]:
        taken, self.commands = self.commands, []
        return taken


def test_three_script_calls_per_request_for_three_breakers(redis_url: str) -> None:
    async def run() -> None:
        store = RedisBreakerStore(redis_url)
        kv = MemoryKV()
        policy = BreakerPolicy(store, kv, Cooldowns(kv), rules=lambda: RULES)
        await store._redis.script_load(SCRIPT)  # so that no call below needs a SCRIPT LOAD first
        counted = Counted(store)
        try:
            for n in range(1, 4):
                ctx = _ctx(n, "the same question")  # repeats, sizes and growth observed every time
                attempt = SimpleNamespace(deployment=DEPLOYMENT, number=1)
                counted.take()
                if n == 3:  # the third identical request is refused on arrival, in that same one call
                    try:
                        await policy.on_request(ctx)
                    except GatewayError as exc:
                        assert exc.code == "breaker_open"
                        assert "the same request 3 times in 1min > 2" in exc.message
                    else:
                        raise AssertionError("the third repeat was admitted")
                    assert counted.take() == ["EVALSHA"]
                    break
                assert await policy.on_request(ctx) is None
                assert counted.take() == ["EVALSHA"]
                await policy.before_attempt(ctx, attempt)
                assert counted.take() == ["EVALSHA"]
                usage = TokenUsage(input_tokens=10, output_tokens=5)
                await policy.after_attempt(ctx, attempt, Outcome("ok", 200, usage))
                assert counted.take() == ["EVALSHA"]
                await policy.on_complete(ctx, None)
                assert counted.take() == []
            snapshot = {s.key: s for s in await store.snapshot()}
            agent = snapshot["Breaker/agent-guard/agent:load"]
            assert agent.status == "open" and agent.trigger == "repeats"
            deployment = snapshot["Breaker/upstream-errors/deployment:sim/m"]
            assert deployment.values == {"error-rate": 0.0}
            key = snapshot["Breaker/key-guard/key:bench"]
            assert key.values == {"repeats": 2.0}  # the third arrival stopped at the agent's refusal
        finally:
            await store.close()

    asyncio.run(run())


def test_an_unreachable_store_is_rested_and_breakers_fail_open(monkeypatch: Any) -> None:
    """After a failure the store is not asked for REST_AFTER_FAILURE seconds (a clock moved by hand)."""
    from fleetplane.gateway.breaker import policy as module

    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])

    class Down:
        calls = 0

        async def arrive(self, items: Any) -> Any:
            Down.calls += 1
            raise module.BreakerStoreUnavailable("down")

        record = arrive

    async def run() -> None:
        kv = MemoryKV()
        policy = BreakerPolicy(Down(), kv, Cooldowns(kv), rules=lambda: RULES)  # type: ignore[arg-type]
        attempt = SimpleNamespace(deployment=DEPLOYMENT, number=1)
        for n in range(3):
            ctx = _ctx(n + 1, "again")
            assert await policy.on_request(ctx) is None  # fails open
            await policy.before_attempt(ctx, attempt)
            await policy.after_attempt(ctx, attempt, Outcome("ok", 200, TokenUsage(input_tokens=1)))
        assert Down.calls == 1  # the first call failed; the rest were not sent
        now[0] += module.REST_AFTER_FAILURE
        await policy.on_request(_ctx(9, "again"))
        assert Down.calls == 2

    asyncio.run(run())
