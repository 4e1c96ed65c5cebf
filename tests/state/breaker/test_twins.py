"""The in-process store and the Lua script are two spellings of one state machine: fed the same seeded
random traffic on the same manual time, they give the same answers, verdict for verdict."""

from __future__ import annotations

import random

import pytest
from breaker_support import START, spec_with

from fleetplane.state.breaker import BreakerStore, MemoryBreakerStore, RedisBreakerStore, Trigger
from fleetplane.state.clock import ManualClock

pytestmark = pytest.mark.anyio

SPECS = [
    spec_with(
        Trigger("cost-velocity", window=60, threshold=5.0, kind="sum"),
        Trigger("repeats", window=30, threshold=3, kind="sum", min_samples=2),
        Trigger("context-growth", window=300, threshold=100_000, kind="max"),
        key="loop-guard/agent:a",
        open_for=7,
        max_open_for=50,
        half_open_probes=2,
        close_after=2,
        probe_timeout=20,
    ),
    spec_with(
        Trigger("error-rate", window=20, threshold=0.4, kind="ratio", min_samples=5),
        key="upstream-errors/deployment:sim/b",
        open_for=3,
        max_open_for=40,
        half_open_probes=1,
        close_after=3,
        probe_timeout=10,
    ),
]


async def play(store: BreakerStore, clock: ManualClock, seed: int, steps: int) -> list[object]:
    rng = random.Random(seed)
    answers: list[object] = []
    for _ in range(steps):
        clock.advance(rng.choice([0, 0, 0.25, 1, 2.5, 6, 15]))
        spec = rng.choice(SPECS)
        op = rng.random()
        if op < 0.25:
            answers.append(await store.check(spec))
        elif op < 0.4:
            answers.append(await store.probe_done(spec, good=rng.random() < 0.6))
        else:
            trigger = rng.choice(spec.triggers)
            amount = {"cost-velocity": rng.uniform(0, 2), "repeats": 1.0}.get(trigger.name, 0.0)
            if trigger.kind == "max":
                amount = rng.choice([20_000.0, 60_000.0, 100_001.0])
            answers.append(
                await store.observe(
                    spec, trigger.name, amount, bad=rng.random() < 0.45, probe=rng.random() < 0.5
                )
            )
        if rng.random() < 0.05:
            answers.append(await store.snapshot())
    return answers


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_memory_and_redis_answer_alike(redis_url: str, seed: int) -> None:
    memory_clock, redis_clock = ManualClock(start=START), ManualClock(start=START)
    memory = MemoryBreakerStore(clock=memory_clock)
    redis = RedisBreakerStore(redis_url, clock=redis_clock)
    try:
        expected = await play(memory, memory_clock, seed, 400)
        got = await play(redis, redis_clock, seed, 400)
    finally:
        await redis.close()
    statuses = {getattr(v, "status", None) for v in expected}
    assert {"closed", "open", "half_open"} <= statuses  # the traffic reaches every state
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"step {i}"
