"""Each kind of trigger trips exactly when its windowed value passes the threshold, says why, and its
window slides with the (manual) clock. Runs on both stores."""

from __future__ import annotations

import pytest
from breaker_support import START, spec_with, value

from fleetplane.state.breaker import BreakerStore, Trigger
from fleetplane.state.clock import ManualClock

pytestmark = pytest.mark.anyio


COST = Trigger("cost-velocity", window=60, threshold=5.0, kind="sum")
REPEATS = Trigger("repeats", window=60, threshold=5, kind="sum")
CONTEXT = Trigger("context-growth", window=300, threshold=100_000, kind="max")
ERRORS = Trigger("error-rate", window=60, threshold=0.5, kind="ratio", min_samples=10)


async def test_cost_velocity_trips_only_past_the_threshold_and_says_why(store: BreakerStore) -> None:
    spec = spec_with(COST)
    for amount in (2.0, 2.0, 1.0):
        assert (await store.observe(spec, "cost-velocity", amount)).status == "closed"
    assert await value(store, spec, "cost-velocity") == 5.0  # equal to the threshold: not past it
    tripped = await store.observe(spec, "cost-velocity", 1.2)
    assert (tripped.status, tripped.admitted, tripped.trigger) == ("open", False, "cost-velocity")
    assert tripped.reason == "cost velocity $6.20/min > $5.00/min"
    assert tripped.retry_after == 30
    refused = await store.check(spec)
    assert (refused.status, refused.admitted, refused.reason) == ("open", False, tripped.reason)


async def test_cost_velocity_over_a_longer_window_is_said_per_minute(store: BreakerStore) -> None:
    spec = spec_with(Trigger("cost-velocity", window=300, threshold=25.0, kind="sum"))
    verdict = await store.observe(spec, "cost-velocity", 31.0)
    assert verdict.reason == "cost velocity $6.20/min > $5.00/min"


async def test_repeats_count_more_than_the_threshold(store: BreakerStore) -> None:
    spec = spec_with(REPEATS)
    for _ in range(5):
        assert (await store.observe(spec, "repeats", 1)).admitted
    verdict = await store.observe(spec, "repeats", 1)
    assert (verdict.status, verdict.reason) == ("open", "repeats: 6 in 1min > 5")


async def test_context_growth_trips_on_the_largest_single_observation(store: BreakerStore) -> None:
    spec = spec_with(CONTEXT)
    for size in (90_000, 100_000, 40_000):
        assert (await store.observe(spec, "context-growth", size)).status == "closed"
    assert await value(store, spec, "context-growth") == 100_000  # the largest, not the sum
    verdict = await store.observe(spec, "context-growth", 100_001)
    assert (verdict.status, verdict.reason) == ("open", "context growth: 100,001 tokens > 100,000")


async def test_error_rate_needs_min_samples_then_trips_past_the_ratio(store: BreakerStore) -> None:
    spec = spec_with(ERRORS, key="upstream-errors/deployment:sim/sim-large")
    for _ in range(9):
        await store.observe(spec, "error-rate", 0, bad=True)
    assert await value(store, spec, "error-rate") == 1.0
    assert (await store.check(spec)).status == "closed"  # 9 of 9 failed, but 9 < min_samples
    await store.reset(spec.key)
    for bad in [False] * 5 + [True] * 5:
        assert (await store.observe(spec, "error-rate", 0, bad=bad)).status == "closed"
    assert await value(store, spec, "error-rate") == 0.5  # 5 of 10: at the threshold, not past it
    verdict = await store.observe(spec, "error-rate", 0, bad=True)
    assert verdict.status == "open"
    assert verdict.reason == "error rate 55% > 50% (6 of 11 in 1min)"


async def test_a_ratio_sample_can_weigh_more_than_one(store: BreakerStore) -> None:
    spec = spec_with(ERRORS)
    await store.observe(spec, "error-rate", 0, sample=8)
    assert (await store.observe(spec, "error-rate", 0, bad=True, sample=8)).status == "closed"
    verdict = await store.observe(spec, "error-rate", 0, bad=True, sample=0.5)
    assert (verdict.status, verdict.reason) == ("open", "error rate 52% > 50% (8.5 of 16.5 in 1min)")


async def test_min_samples_holds_a_sum_trigger_too(store: BreakerStore) -> None:
    spec = spec_with(Trigger("spend", window=60, threshold=1.0, kind="sum", min_samples=3))
    assert (await store.observe(spec, "spend", 5.0)).status == "closed"
    assert (await store.observe(spec, "spend", 0.0)).status == "closed"
    verdict = await store.observe(spec, "spend", 0.0)
    assert (verdict.status, verdict.reason) == ("open", "spend 5 in 1min > 1")


@pytest.mark.parametrize(
    ("trigger", "amount"),
    [(COST, 4.0), (CONTEXT, 90_000.0), (Trigger("errors", window=60, threshold=1.0, kind="ratio"), 0.0)],
)
async def test_an_observation_counts_for_one_window_then_slides_out(
    store: BreakerStore, clock: ManualClock, trigger: Trigger, amount: float
) -> None:
    spec = spec_with(trigger)
    slot = trigger.window / 10
    # First observation at the very end of its slot: it lives window - slot seconds.
    clock.advance(slot - 0.5)
    await store.observe(spec, trigger.name, amount, bad=trigger.kind == "ratio")
    expected = 1.0 if trigger.kind == "ratio" else amount
    clock.set(START + trigger.window - 0.001)
    assert await value(store, spec, trigger.name) == expected
    clock.set(START + trigger.window)
    assert await value(store, spec, trigger.name) == 0.0


async def test_the_window_slides_slot_by_slot(store: BreakerStore, clock: ManualClock) -> None:
    spec = spec_with(Trigger("spend", window=60, threshold=100, kind="sum"))
    seen = []
    for _ in range(12):  # $1 every 6 s, one per slot: the window holds the last 10 of them
        await store.observe(spec, "spend", 1.0)
        seen.append(await value(store, spec, "spend"))
        clock.advance(6)
    assert seen == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10]
    clock.advance(30)  # 36 s after the last one: only the last 4 slots are still inside
    assert await value(store, spec, "spend") == 4.0


async def test_triggers_are_independent(store: BreakerStore) -> None:
    spec = spec_with(COST, REPEATS)
    await store.observe(spec, "cost-velocity", 4.0)
    await store.observe(spec, "repeats", 5)
    (snap,) = await store.snapshot([spec.key])
    assert (snap.status, snap.values) == ("closed", {"cost-velocity": 4.0, "repeats": 5.0})
    assert (await store.observe(spec, "repeats", 1)).trigger == "repeats"


async def test_bad_observations_are_refused_before_anything_counts(store: BreakerStore) -> None:
    spec = spec_with(COST)
    with pytest.raises(ValueError, match="has no trigger 'cost'"):
        await store.observe(spec, "cost", 1.0)
    for amount, sample in ((-1.0, 1.0), (float("nan"), 1.0), (1.0, -1.0), (float("inf"), 1.0)):
        with pytest.raises(ValueError, match="finite and not negative"):
            await store.observe(spec, "cost-velocity", amount, sample=sample)
    assert await store.snapshot() == []
