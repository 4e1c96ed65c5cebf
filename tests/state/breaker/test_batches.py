"""`arrive` and `record`: many breakers' checks, counters and observations in one call (one script call
on Redis), with the answers calling them one by one would give, on both stores."""

from __future__ import annotations

import random

import pytest
from breaker_support import START, spec_with

from fleetplane.state.breaker import (
    Arrived,
    BreakerStore,
    MemoryBreakerStore,
    RedisBreakerStore,
    Step,
    Trigger,
    Verdict,
)
from fleetplane.state.clock import ManualClock

pytestmark = pytest.mark.anyio

AGENT = spec_with(
    Trigger("repeats", window=60, threshold=2, kind="max"),
    Trigger("context-size", window=60, threshold=1000, kind="max"),
    Trigger("context-growth", window=60, threshold=300, kind="max"),
    Trigger("cost-velocity", window=60, threshold=1.0, kind="sum"),
    key="agent-guard/agent:a",
    open_for=10,
    half_open_probes=1,
    close_after=1,
)
KEY = spec_with(Trigger("repeats", window=60, threshold=9, kind="max"), key="key-guard/key:k", open_for=10)
ERRORS = spec_with(
    Trigger("error-rate", window=60, threshold=0.5, kind="ratio", min_samples=4),
    key="errors/deployment:d",
    open_for=5,
    close_after=2,
)


def arrival(fingerprint: str, size: float, conversation: str = "c", ttl: float = 60) -> list[Step]:
    return [
        Step("count", "repeats", member=fingerprint, ttl=ttl),
        Step("observe", "context-size", size),
        Step("growth", "context-growth", size, member=conversation, ttl=3600),
    ]


async def test_arrival_counts_repeats_and_growth_and_stops_at_the_first_refusal(store: BreakerStore) -> None:
    both = [(AGENT, arrival("f", 100)), (KEY, [Step("count", "repeats", member="f", ttl=60)])]
    closed = Verdict("closed", True)
    assert await store.arrive(both) == [Arrived(False, closed), Arrived(False, closed)]
    # The conversation grew by 250 (under 300); the same fingerprint a second time (not over 2).
    assert await store.arrive(both) == [Arrived(False, closed), Arrived(False, closed)]
    # A third time: the agent's breaker trips on repeats, and the key's breaker is not reached.
    [answer] = await store.arrive(both)
    assert not answer.probe and answer.verdict.status == "open" and answer.verdict.trigger == "repeats"
    assert answer.verdict.reason == "the same request 3 times in 1min > 2"
    (key,) = await store.snapshot([KEY.key])
    assert key.values == {"repeats": 2.0}
    # Open: refused on its check, nothing observed, the rest not reached either.
    [again] = await store.arrive([(AGENT, arrival("g", 10)), (KEY, [])])
    assert again.verdict.status == "open" and not again.verdict.admitted


async def test_growth_is_measured_from_the_conversations_last_turn(store: BreakerStore) -> None:
    assert (await store.arrive([(AGENT, arrival("a", 100))]))[0].verdict.admitted
    assert (await store.arrive([(AGENT, arrival("b", 400))]))[0].verdict.admitted  # +300: not over
    [grown] = await store.arrive([(AGENT, arrival("c", 701))])  # +301
    assert grown.verdict.status == "open" and grown.verdict.trigger == "context-growth"
    assert grown.verdict.reason == "context growth: 301 tokens > 300"


async def test_records_and_probes_in_one_call(store: BreakerStore, clock: ManualClock) -> None:
    bad = [Step("observe", "error-rate", 1.0, bad=True)]
    verdicts = await store.record([(ERRORS, bad), (ERRORS, bad), (ERRORS, bad)])
    assert [[v.status for v in group] for group in verdicts] == [["closed"], ["closed"], ["closed"]]
    [[fourth]] = await store.record([(ERRORS, bad)])
    assert fourth.status == "open" and fourth.retry_after == 5
    clock.advance(5)
    [probe] = await store.arrive([(ERRORS, [])])
    assert probe == Arrived(True, Verdict("half_open", True, probe.verdict.reason, "error-rate", probe=True))
    # A good sample as the probe, and its report: one call; the second good report closes it.
    good = [Step("observe", "error-rate", 1.0, probe=True), Step("probe_done", good=True)]
    [[sample, done]] = await store.record([(ERRORS, good)])
    assert (sample.status, done.status) == ("half_open", "half_open")
    [probe] = await store.arrive([(ERRORS, [])])
    assert probe.probe
    [[done]] = await store.record([(ERRORS, [Step("probe_done", good=True)])])
    assert done.status == "closed"


# Counters on Redis expire on Redis's own clock (PEXPIRE), not the manual one: long enough for neither.
LONG = 100_000.0


async def play(store: BreakerStore, clock: ManualClock, seed: int, steps: int) -> list[object]:
    rng = random.Random(seed)
    answers: list[object] = []
    for _ in range(steps):
        clock.advance(rng.choice([0, 0, 0.5, 2, 6, 15]))
        if rng.random() < 0.6:
            items = [
                (
                    AGENT,
                    arrival(
                        rng.choice("abc"), rng.choice([100.0, 420.0, 900.0, 1200.0]), rng.choice("xy"), LONG
                    ),
                ),
                (KEY, [Step("count", "repeats", member=rng.choice("abc"), ttl=LONG)]),
                (ERRORS, []),
            ]
            answers.append(await store.arrive(rng.sample(items, rng.randint(1, 3))))
        else:
            bad = rng.random() < 0.5
            answers.append(
                await store.record(
                    [
                        (ERRORS, [Step("observe", "error-rate", 1.0, bad=bad, probe=rng.random() < 0.5)]),
                        (ERRORS, [Step("probe_done", good=not bad)]),
                        (AGENT, [Step("observe", "cost-velocity", rng.uniform(0, 0.6))]),
                        (AGENT, [Step("probe_done", good=rng.random() < 0.7)]),
                    ]
                )
            )
    return answers


@pytest.mark.parametrize("seed", [1, 2])
async def test_memory_and_redis_batches_answer_alike(redis_url: str, seed: int) -> None:
    memory_clock, redis_clock = ManualClock(start=START), ManualClock(start=START)
    memory = MemoryBreakerStore(clock=memory_clock)
    redis = RedisBreakerStore(redis_url, clock=redis_clock)
    try:
        expected = await play(memory, memory_clock, seed, 300)
        got = await play(redis, redis_clock, seed, 300)
    finally:
        await redis.close()
    statuses = {
        a.verdict.status
        for group in expected
        if isinstance(group, list)
        for a in group
        if isinstance(a, Arrived)
    }
    assert {"closed", "open", "half_open"} <= statuses
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"step {i}"
