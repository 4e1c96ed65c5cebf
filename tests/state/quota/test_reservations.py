"""Reservations: settle to the real usage, exactly once; commit, extend, release and lease expiry; nothing
a crashed gateway or a cancelled stream held can leak."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from quota_support import Quota, concurrent, rpm, tpm, usd_per_day

from fleetplane.state.quota import (
    Admitted,
    Charge,
    Denied,
    Limit,
    LimitUsage,
    SlidingWindow,
    UnknownReservation,
)

pytestmark = pytest.mark.anyio


def held(usages: list[LimitUsage]) -> list[tuple[float, float]]:
    return [(u.used, u.reserved) for u in usages]


def mixed() -> list[Limit]:
    return [
        tpm(limit=10_000),
        Limit("team/acme/input-tpm", "team acme", "input-tpm", "input_tokens", 10_000, tpm().window),
        Limit("team/acme/output-tpm", "team acme", "output-tpm", "output_tokens", 10_000, tpm().window),
        rpm(limit=100),
        usd_per_day(limit=100.0),
        concurrent(limit=10),
    ]


ESTIMATE = Charge(tokens=1200, input_tokens=200, output_tokens=1000, requests=1, dollars=0.012)


@pytest.mark.parametrize(
    "final",
    [
        Charge(tokens=350, input_tokens=200, output_tokens=150, requests=1, dollars=0.0035),
        Charge(tokens=2600, input_tokens=200, output_tokens=2400, requests=1, dollars=0.026),
    ],
    ids=["lower", "higher"],
)
async def test_settle_leaves_exactly_the_final_usage_in_every_window(quota: Quota, final: Charge) -> None:
    limits = mixed()
    await quota.store.admit("r1", limits, ESTIMATE, lease=30)
    quota.clock.advance(12)  # settled in a later slot than it was admitted in
    assert await quota.store.settle("r1", final)
    usages = await quota.store.usage(limits)
    expected = [final.tokens, final.input_tokens, final.output_tokens, final.requests, final.dollars, 0]
    assert [u.used for u in usages] == pytest.approx(expected, abs=1e-12)
    assert [u.reserved for u in usages] == [0.0] * 6
    # Settling again, or releasing, changes nothing.
    assert not await quota.store.settle("r1", Charge(tokens=1))
    assert not await quota.store.release("r1")
    assert not await quota.store.commit("r1", Charge(tokens=99_999))
    assert [u.used for u in await quota.store.usage(limits)] == pytest.approx(expected, abs=1e-12)


async def test_usage_separates_what_is_committed_from_what_is_only_reserved(quota: Quota) -> None:
    limit = tpm(limit=1000)
    await quota.store.admit("r1", [limit], Charge(tokens=100), lease=30)
    assert await quota.store.commit("r1", Charge(tokens=30))
    assert held(await quota.store.usage([limit])) == [(30.0, 70.0)]
    # Commits are cumulative: a smaller one later does not take usage back.
    assert await quota.store.commit("r1", Charge(tokens=20))
    assert held(await quota.store.usage([limit])) == [(30.0, 70.0)]


async def test_release_keeps_only_what_was_committed(quota: Quota) -> None:
    limits = [tpm(limit=1000), concurrent(limit=1)]
    await quota.store.admit("r1", limits, Charge(tokens=100), lease=30)
    await quota.store.commit("r1", Charge(tokens=30))
    assert await quota.store.release("r1")
    assert held(await quota.store.usage(limits)) == [(30.0, 0.0), (0.0, 0.0)]
    assert not await quota.store.release("r1")


async def test_a_lapsed_lease_is_settled_at_its_committed_usage(quota: Quota) -> None:
    limits = [tpm(limit=1000), concurrent(limit=1)]
    await quota.store.admit("r1", limits, Charge(tokens=100), lease=30)
    quota.clock.advance(20)
    await quota.store.commit("r1", Charge(tokens=45))  # renews the lease: now due at +50
    quota.clock.advance(29)
    assert await quota.store.expire() == 0
    quota.clock.advance(1)
    assert await quota.store.expire() == 1
    assert held(await quota.store.usage(limits)) == [(45.0, 0.0), (0.0, 0.0)]
    # The gateway's late callbacks find the reservation ended and change nothing.
    assert not await quota.store.settle("r1", Charge(tokens=100))
    assert not await quota.store.commit("r1", Charge(tokens=100))
    with pytest.raises(UnknownReservation):
        await quota.store.extend("r1", Charge(tokens=1))
    assert held(await quota.store.usage(limits)) == [(45.0, 0.0), (0.0, 0.0)]


async def test_commit_with_a_lease_sets_the_lease_from_then_on(quota: Quota) -> None:
    await quota.store.admit("r1", [tpm()], Charge(tokens=10), lease=10)
    await quota.store.commit("r1", Charge(tokens=1), lease=100)
    quota.clock.advance(90)
    await quota.store.commit("r1", Charge(tokens=2))  # renews by 100 again
    quota.clock.advance(99)
    assert await quota.store.expire() == 0
    quota.clock.advance(1)
    assert await quota.store.expire() == 1


async def test_admission_frees_lapsed_reservations_before_measuring(quota: Quota) -> None:
    """A gateway that crashed mid-stream: its hold returns without anyone calling expire()."""
    limits = [tpm(limit=100), concurrent(limit=1)]
    await quota.store.admit("crashed", limits, Charge(tokens=100), lease=30)
    await quota.store.commit("crashed", Charge(tokens=10))
    denied = await quota.store.admit("r2", limits, Charge(tokens=10), lease=30)
    assert isinstance(denied, Denied) and denied.limit.key == limits[0].key
    quota.clock.advance(30)
    assert isinstance(await quota.store.admit("r2", limits, Charge(tokens=90), lease=30), Admitted)
    assert held(await quota.store.usage(limits)) == [(10.0, 90.0), (1.0, 0.0)]


async def test_concurrency_denial_says_when_a_place_is_sure_to_free(quota: Quota) -> None:
    limit = concurrent(limit=2)
    await quota.store.admit("r1", [limit], Charge(), lease=30)
    quota.clock.advance(5)
    await quota.store.admit("r2", [limit], Charge(), lease=30)
    denied = await quota.store.admit("r3", [limit], Charge(), lease=30)
    assert denied == Denied(limit, used=2.0, reserved=0.0, requested=1.0, retry_after=25.0)
    never = await quota.store.admit("r4", [concurrent("team/none/concurrent", limit=0)], Charge(), lease=30)
    assert isinstance(never, Denied) and never.retry_after is None


async def test_500_reservations_ended_by_every_path_return_the_concurrency_counter_to_zero(
    quota: Quota,
) -> None:
    limits = [concurrent(limit=500), tpm(limit=1_000_000, window=SlidingWindow(3600, 60))]
    for i in range(500):
        assert isinstance(await quota.store.admit(f"r{i}", limits, Charge(tokens=10), lease=60), Admitted)
    assert isinstance(await quota.store.admit("one-too-many", limits, Charge(tokens=10), lease=60), Denied)
    expected_tokens = 0
    for i in range(500):
        if i % 3 == 0:
            assert await quota.store.settle(f"r{i}", Charge(tokens=7))
            expected_tokens += 7
        elif i % 3 == 1:
            await quota.store.commit(f"r{i}", Charge(tokens=3), lease=30)
            assert await quota.store.release(f"r{i}")
            expected_tokens += 3
        else:
            await quota.store.commit(f"r{i}", Charge(tokens=4))  # left to its lease
            expected_tokens += 4
    quota.clock.advance(60)
    assert await quota.store.expire() == 166
    assert held(await quota.store.usage(limits)) == [(0.0, 0.0), (float(expected_tokens), 0.0)]
    # Ending them again by any path never takes the counter below zero.
    for i in range(0, 500, 7):
        await quota.store.settle(f"r{i}", Charge())
        await quota.store.release(f"r{i}")
    assert await quota.store.expire() == 0
    assert held(await quota.store.usage(limits)) == [(0.0, 0.0), (float(expected_tokens), 0.0)]


async def test_extend_admits_more_only_if_every_limit_still_fits(quota: Quota) -> None:
    team, user, requests = tpm(limit=1000), tpm("user/ann/tpm", limit=300), rpm(limit=1)
    limits = [team, user, requests]
    await quota.store.admit("r1", limits, Charge(tokens=200, requests=1), lease=30)
    grown = await quota.store.extend("r1", Charge(tokens=100))
    # The full requests limit does not block more tokens: an extension is measured on what it adds.
    assert isinstance(grown, Admitted) and grown.remaining == {
        team.key: 700.0,
        user.key: 0.0,
        requests.key: 0.0,
    }
    denied = await quota.store.extend("r1", Charge(tokens=1))
    assert denied == Denied(user, used=0.0, reserved=300.0, requested=1.0, retry_after=60.0)
    assert held(await quota.store.usage(limits)) == [(0.0, 300.0), (0.0, 300.0), (0.0, 1.0)]
    assert await quota.store.settle("r1", Charge(tokens=280, requests=1))
    assert held(await quota.store.usage(limits)) == [(280.0, 0.0), (280.0, 0.0), (1.0, 0.0)]
    with pytest.raises(UnknownReservation):
        await quota.store.extend("r1", Charge(tokens=1))
    with pytest.raises(UnknownReservation):
        await quota.store.extend("never-admitted", Charge(tokens=1))


async def test_a_stream_longer_than_the_window_is_charged_where_its_tokens_were_produced(
    quota: Quota,
) -> None:
    limit = tpm(limit=1000)
    await quota.store.admit("r1", [limit], Charge(tokens=100), lease=600)
    quota.clock.advance(30)
    await quota.store.extend("r1", Charge(tokens=200))  # charged to the slot of T0 + 30
    quota.clock.advance(30)  # T0's slot leaves; the extension stays until T0 + 90
    assert held(await quota.store.usage([limit])) == [(0.0, 200.0)]
    quota.clock.advance(10)
    await quota.store.commit("r1", Charge(tokens=400))  # 100 beyond what is held: charged now, at T0 + 70
    assert held(await quota.store.usage([limit])) == [(300.0, 0.0)]  # T0's 100 has left
    quota.clock.advance(20)  # T0 + 90: the extension's slot leaves too
    assert held(await quota.store.usage([limit])) == [(100.0, 0.0)]
    # Settling lower takes from the newest part first; parts outside the window no longer matter.
    assert await quota.store.settle("r1", Charge(tokens=150))
    assert held(await quota.store.usage([limit])) == [(0.0, 0.0)]


async def test_settling_after_the_admission_slot_left_never_goes_negative(quota: Quota) -> None:
    limit = tpm(limit=1000)
    await quota.store.admit("r1", [limit], Charge(tokens=100), lease=600)
    await quota.store.admit("r2", [limit], Charge(tokens=100), lease=600)
    quota.clock.advance(61)
    assert await quota.store.settle("r1", Charge(tokens=40))
    assert held(await quota.store.usage([limit])) == [(0.0, 0.0)]
    assert await quota.store.settle("r2", Charge(tokens=250))  # the 150 beyond the estimate count now
    assert held(await quota.store.usage([limit])) == [(150.0, 0.0)]


async def test_an_admission_whose_caller_was_cancelled_cannot_leak(quota: Quota) -> None:
    """Cancelled mid-call, the caller cannot know whether the store charged it; the lease settles that."""
    limits = [tpm(limit=1000), concurrent(limit=1)]
    for i in range(20):
        task = asyncio.ensure_future(quota.store.admit(f"c{i}", limits, Charge(tokens=50), lease=30))
        for _ in range(i % 4):
            await asyncio.sleep(0)  # cancel at different points of the call
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    quota.clock.advance(30)
    await quota.store.expire()
    assert held(await quota.store.usage(limits)) == [(0.0, 0.0), (0.0, 0.0)]
