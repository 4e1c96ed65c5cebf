"""Back-off arithmetic with fixed seeds and a manual clock: no sleeps, no timing."""

from __future__ import annotations

import asyncio
import random
import statistics

import pytest

from fleetplane.state.backoff import Backoff, Retries
from fleetplane.state.clock import ManualClock


def test_the_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=8.0)
    assert [backoff.ceiling(n) for n in range(7)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert backoff.ceiling(10_000) == 8.0  # no overflow however many attempts


def test_full_jitter_spreads_over_the_whole_interval() -> None:
    backoff, rng = Backoff(base=0.5, cap=30.0), random.Random(7)
    delays = [backoff.delay(3, rng=rng) for _ in range(2000)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert min(delays) < 0.01 and max(delays) > 3.99  # from (almost) nothing to (almost) the ceiling
    assert statistics.mean(delays) == pytest.approx(2.0, abs=0.1)


def test_the_same_seed_gives_the_same_delays() -> None:
    backoff = Backoff()
    first = [backoff.delay(n, rng=random.Random(11)) for n in range(6)]
    again = [backoff.delay(n, rng=random.Random(11)) for n in range(6)]
    other = [backoff.delay(n, rng=random.Random(12)) for n in range(6)]
    assert first == again != other


def test_retry_after_is_a_floor_the_jitter_never_shortens() -> None:
    backoff, rng = Backoff(base=1.0, cap=4.0), random.Random(3)
    assert {backoff.delay(2, retry_after=5.0, rng=rng) for _ in range(100)} == {5.0}  # past the cap too
    floored = [backoff.delay(2, retry_after=1.5, rng=rng) for _ in range(500)]
    assert min(floored) == 1.5
    assert max(floored) > 3.9  # above the floor, the jitter still spreads
    assert all(backoff.delay(2, retry_after=bad, rng=rng) <= 4.0 for bad in (float("nan"), -3.0, None))


def test_a_wait_that_would_reach_the_deadline_is_not_taken() -> None:
    backoff, rng = Backoff(base=1.0, cap=4.0), random.Random(5)
    assert backoff.next_delay(0, now=100.0, deadline=100.0, rng=rng) is None
    assert backoff.next_delay(0, now=100.0, deadline=110.0, retry_after=10.0, rng=rng) is None
    assert backoff.next_delay(0, now=100.0, deadline=110.0, retry_after=9.5, rng=rng) == 9.5
    assert backoff.next_delay(0, now=100.0, deadline=101.5, retry_after=float("inf"), rng=rng) is None
    sleeps = [backoff.next_delay(5, now=0.0, deadline=2.0, rng=rng) for _ in range(200)]
    assert {s is None for s in sleeps} == {True, False}  # only the draws that fit are taken
    assert all(s < 2.0 for s in sleeps if s is not None)


def test_retries_count_attempts_and_stop_at_the_deadline() -> None:
    clock = ManualClock()
    retries = Retries(Backoff(base=1.0, cap=100.0), deadline=20.0, clock=clock, rng=random.Random(1))
    taken = []
    while (sleep := retries.next_delay()) is not None:
        taken.append(sleep)
        clock.advance(sleep)
    assert retries.attempt == len(taken) >= 2
    assert clock.monotonic() < 20.0  # every retry taken starts before the deadline


@pytest.mark.anyio
async def test_wait_sleeps_on_the_injected_clock() -> None:
    clock = ManualClock()
    retries = Retries(Backoff(base=1.0, cap=1.0), deadline=10.0, clock=clock, rng=random.Random(2))
    waiting = asyncio.create_task(retries.wait(retry_after=3.0))
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(2.999)
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(0.001)
    assert await waiting is True
    assert await retries.wait(retry_after=7.0) is False  # 3 + 7 reaches the deadline: no sleep at all
    assert retries.attempt == 1


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0), (1.0, float("inf"))])
def test_an_impossible_backoff_is_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="0 < base <= cap"):
        Backoff(base=base, cap=cap)


def test_a_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt"):
        Backoff().ceiling(-1)
