"""Admission: all or nothing over every limit of a request, exact under concurrent callers, idempotent."""

from __future__ import annotations

import asyncio
import random

import pytest
from quota_support import Quota, concurrent, rpm, tpm, usd_per_day

from fleetplane.state.quota import Admitted, CalendarWindow, Charge, Denied, Limit, SlidingWindow

pytestmark = pytest.mark.anyio

SCOPES = ["org/acme", "team/acme/support", "user/ann", "agent/triage", "model/gpt", "key/k1"]


async def test_admits_up_to_the_limit_and_then_denies_naming_the_limit(quota: Quota) -> None:
    limit = tpm(limit=100)
    first = await quota.store.admit("r1", [limit], Charge(tokens=60), lease=30)
    assert first == Admitted("r1", {limit.key: 40.0}, {limit.key: 60.0})
    second = await quota.store.admit("r2", [limit], Charge(tokens=41), lease=30)
    # The slot charged at T0 leaves the 60 s window at T0 + 60.
    assert second == Denied(limit, used=0.0, reserved=60.0, requested=41.0, retry_after=60.0)
    third = await quota.store.admit("r3", [limit], Charge(tokens=40), lease=30)
    assert isinstance(third, Admitted) and third.remaining == {limit.key: 0.0}


async def test_a_request_denied_by_one_limit_charges_none_of_the_others(quota: Quota) -> None:
    limits = [tpm(f"{scope}/tpm", limit=1000) for scope in SCOPES] + [rpm(f"{scope}/rpm") for scope in SCOPES]
    tight = tpm("agent/triage/tpm", limit=50)
    limits[3] = tight
    decision = await quota.store.admit("r1", limits, Charge(tokens=51, requests=1), lease=30)
    assert isinstance(decision, Denied) and decision.limit == tight
    for usage in await quota.store.usage(limits):
        assert (usage.used, usage.reserved) == (0.0, 0.0), usage.key
    assert isinstance(
        await quota.store.admit("r2", limits, Charge(tokens=50, requests=1), lease=30), Admitted
    )
    assert [u.reserved for u in await quota.store.usage(limits)] == [50.0] * 6 + [1.0] * 6


async def test_of_several_refusing_limits_the_one_that_frees_last_is_named(quota: Quota) -> None:
    minute, day = (
        tpm(limit=10),
        Limit("team/acme/tpd", "team acme", "tpd", "tokens", 10, CalendarWindow("day", "UTC")),
    )
    await quota.store.admit("r1", [minute, day], Charge(tokens=10), lease=30)
    denied = await quota.store.admit("r2", [minute, day], Charge(tokens=5), lease=30)
    assert isinstance(denied, Denied) and denied.limit == day
    # T0 is 2023-11-14 22:20:00 UTC: the day ends 1 h 40 min later.
    assert denied.retry_after == 6000.0
    # A limit the request can never fit binds over any that only has to wait.
    never = await quota.store.admit(
        "r3", [minute, day, tpm("user/ann/tpm", limit=4)], Charge(tokens=5), lease=30
    )
    assert isinstance(never, Denied) and never.limit.key == "user/ann/tpm" and never.retry_after is None


async def test_a_request_larger_than_the_limit_can_never_fit(quota: Quota) -> None:
    decision = await quota.store.admit("r1", [tpm(limit=100)], Charge(tokens=101), lease=30)
    assert isinstance(decision, Denied) and decision.retry_after is None and decision.requested == 101.0


async def test_a_spent_budget_refuses_even_a_request_estimated_at_zero(quota: Quota) -> None:
    budget = usd_per_day(limit=1.0)
    await quota.store.admit("r1", [budget], Charge(dollars=0.5), lease=30)
    await quota.store.settle("r1", Charge(dollars=1.25))  # the real cost overshot the estimate
    decision = await quota.store.admit("r2", [budget], Charge(dollars=0.0), lease=30)
    assert isinstance(decision, Denied) and decision.used == pytest.approx(1.25)


async def test_admit_with_a_used_id_returns_the_first_decision_and_charges_once(quota: Quota) -> None:
    limits = [tpm(limit=100), concurrent(limit=5)]
    first = await quota.store.admit("r1", limits, Charge(tokens=30), lease=30)
    again = await quota.store.admit("r1", limits, Charge(tokens=30), lease=30)
    assert again == first
    assert [u.reserved + u.used for u in await quota.store.usage(limits)] == [30.0, 1.0]
    assert await quota.store.settle("r1", Charge(tokens=10))
    assert await quota.store.admit("r1", limits, Charge(tokens=30), lease=30) == first
    assert [u.reserved + u.used for u in await quota.store.usage(limits)] == [10.0, 0.0]


async def test_dollars_add_up_without_float_drift_refusing_a_whole_cent(quota: Quota) -> None:
    budget = usd_per_day(limit=1.0)
    for i in range(10):
        assert isinstance(await quota.store.admit(f"r{i}", [budget], Charge(dollars=0.1), lease=30), Admitted)
    assert isinstance(await quota.store.admit("r10", [budget], Charge(dollars=0.01), lease=30), Denied)
    [usage] = await quota.store.usage([budget])
    assert usage.reserved == pytest.approx(1.0, abs=1e-12)


async def test_two_hundred_concurrent_admissions_never_exceed_the_limit(quota: Quota) -> None:
    limit = tpm(limit=1000)
    sizes = random.Random(7).choices(range(1, 60), k=200)
    decisions = await asyncio.gather(
        *(quota.store.admit(f"r{i}", [limit], Charge(tokens=size), lease=30) for i, size in enumerate(sizes))
    )
    admitted = sum(size for size, d in zip(sizes, decisions, strict=True) if isinstance(d, Admitted))
    print(f"\n[{quota.kind}] 200 concurrent admissions: {admitted}/1000 admitted, fill {admitted / 1000:.1%}")
    assert admitted <= 1000
    [usage] = await quota.store.usage([limit])
    assert usage.reserved == admitted
    # Room only shrinks, so every refused request was larger than the room left at the end: the fill is
    # greedy-maximal whatever order the callers reached the store in.
    refused = [size for size, d in zip(sizes, decisions, strict=True) if isinstance(d, Denied)]
    assert all(size > 1000 - admitted for size in refused)
    if quota.kind == "memory":
        # In one event loop the callers run in the order they were started: exactly the greedy fill.
        greedy = 0
        for size in sizes:
            greedy += size if greedy + size <= 1000 else 0
        assert admitted == greedy


async def test_concurrent_admissions_over_a_hierarchy_respect_every_limit(quota: Quota) -> None:
    limits = [tpm(f"{scope}/tpm", limit=2000) for scope in SCOPES]
    limits[2] = tpm("user/ann/tpm", limit=700)
    limits.append(concurrent(limit=25))
    sizes = random.Random(11).choices(range(1, 80), k=200)
    decisions = await asyncio.gather(
        *(quota.store.admit(f"r{i}", limits, Charge(tokens=size), lease=30) for i, size in enumerate(sizes))
    )
    admitted = [size for size, d in zip(sizes, decisions, strict=True) if isinstance(d, Admitted)]
    assert sum(admitted) <= 700 and len(admitted) <= 25
    usages = await quota.store.usage(limits)
    assert [u.reserved for u in usages[:-1]] == [float(sum(admitted))] * 6
    assert usages[-1].used == len(admitted)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Charge(tokens=1.5), "tokens"),  # type: ignore[arg-type]
        (lambda: Charge(dollars=-1), "dollars"),
        (lambda: Limit("k", "s", "n", "tokens", 10, None), "window"),
        (lambda: Limit("k", "s", "n", "concurrent", 10, SlidingWindow(60, 12)), "window"),
        (lambda: Limit("k", "s", "n", "tokens", -1, SlidingWindow(60, 12)), "limit"),
        (lambda: SlidingWindow(60, 0), "slots"),
        (lambda: CalendarWindow("day", "Mars/Olympus"), "time zone"),
        (lambda: CalendarWindow("week", "UTC"), "day"),  # type: ignore[arg-type]
    ],
)
def test_malformed_values_fail_where_they_are_built(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


async def test_malformed_admissions_are_refused_before_anything_is_charged(quota: Quota) -> None:
    limit = tpm(limit=100)
    with pytest.raises(ValueError, match="twice"):
        await quota.store.admit("r1", [limit, tpm(limit=50)], Charge(tokens=1), lease=30)
    with pytest.raises(ValueError, match="lease"):
        await quota.store.admit("r1", [limit], Charge(tokens=1), lease=0)
    assert [(u.used, u.reserved) for u in await quota.store.usage([limit])] == [(0.0, 0.0)]
