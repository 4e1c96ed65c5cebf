"""Windows: a sliding window slides slot by slot; a calendar day or month turns over at local midnight,
DST included; retry_after and reset_after are exact to the second."""

from __future__ import annotations

import pytest
from quota_support import T0, Quota, at, tpm, usd_per_day, usd_per_month

from fleetplane.state.quota import Admitted, Charge, Denied, SlidingWindow

pytestmark = pytest.mark.anyio

BERLIN = "Europe/Berlin"


async def test_a_sliding_window_slides(quota: Quota) -> None:
    limit = tpm(limit=100)
    await quota.store.admit("r1", [limit], Charge(tokens=40), lease=600)
    quota.clock.advance(20)
    second = await quota.store.admit("r2", [limit], Charge(tokens=40), lease=600)
    # The oldest slot holding usage is T0's, which leaves at T0 + 60.
    assert isinstance(second, Admitted) and second.reset_after == {limit.key: 40.0}
    quota.clock.advance(10)
    denied = await quota.store.admit("r3", [limit], Charge(tokens=40), lease=600)
    assert isinstance(denied, Denied) and denied.retry_after == 30.0
    quota.clock.advance(29.999)
    assert isinstance(await quota.store.admit("r3", [limit], Charge(tokens=40), lease=600), Denied)
    quota.clock.advance(0.001)
    admitted = await quota.store.admit("r3", [limit], Charge(tokens=40), lease=600)
    # Now the oldest slot holding usage is T0 + 20's, leaving at T0 + 80.
    assert admitted == Admitted("r3", {limit.key: 20.0}, {limit.key: 20.0})


async def test_usage_leaves_a_whole_slot_at_a_time(quota: Quota) -> None:
    """'Exact' for a window of slots: usage counts until its slot's start + the window, then not at all."""
    limit = tpm(limit=100)
    quota.clock.advance(4.9)  # still in the slot that starts at T0
    await quota.store.admit("r1", [limit], Charge(tokens=100), lease=600)
    quota.clock.advance(60 - 4.9 - 0.001)
    assert [u.reserved for u in await quota.store.usage([limit])] == [100.0]
    quota.clock.advance(0.001)
    assert [u.reserved for u in await quota.store.usage([limit])] == [0.0]


async def test_retry_after_waits_for_just_enough_slots_to_leave(quota: Quota) -> None:
    limit = tpm(limit=100)
    for i in range(3):
        await quota.store.admit(f"r{i}", [limit], Charge(tokens=30), lease=600)
        quota.clock.advance(10)
    # 90 used (at T0, T0+10, T0+20), now T0+30: 60 more needs 50 freed, i.e. the slots of T0 and T0+10.
    denied = await quota.store.admit("big", [limit], Charge(tokens=60), lease=600)
    assert isinstance(denied, Denied) and (denied.used, denied.reserved) == (0.0, 90.0)
    assert denied.retry_after == 40.0
    quota.clock.advance(40)
    assert isinstance(await quota.store.admit("big", [limit], Charge(tokens=60), lease=600), Admitted)


async def test_a_window_of_uneven_slots_keeps_its_arithmetic(quota: Quota) -> None:
    limit = tpm(limit=10, window=SlidingWindow(seconds=10, slots=3))  # slots of 3.333… s
    await quota.store.admit("r1", [limit], Charge(tokens=10), lease=600)
    denied = await quota.store.admit("r2", [limit], Charge(tokens=1), lease=600)
    assert isinstance(denied, Denied) and denied.retry_after is not None
    quota.clock.advance(denied.retry_after)
    assert isinstance(await quota.store.admit("r2", [limit], Charge(tokens=1), lease=600), Admitted)


async def test_a_calendar_day_turns_over_at_local_midnight_on_a_23_hour_day(quota: Quota) -> None:
    budget = usd_per_day(limit=1.0, tz=BERLIN)
    quota.clock.set(at("2024-03-31 10:00", BERLIN))  # clocks jumped from 02:00 to 03:00 this morning
    first = await quota.store.admit("r1", [budget], Charge(dollars=0.6), lease=60)
    # Midnight is 14 hours away (22:00 UTC), not the 15 an hour-count from 10:00 would suggest... nor 13.
    assert isinstance(first, Admitted) and first.reset_after == {budget.key: 14 * 3600.0}
    await quota.store.settle("r1", Charge(dollars=0.6))
    denied = await quota.store.admit("r2", [budget], Charge(dollars=0.6), lease=60)
    assert isinstance(denied, Denied) and denied.retry_after == 14 * 3600.0
    assert denied.used == pytest.approx(0.6) and denied.reserved == 0.0
    quota.clock.set(at("2024-03-31 23:59:59", BERLIN))
    assert isinstance(await quota.store.admit("r2", [budget], Charge(dollars=0.6), lease=60), Denied)
    quota.clock.set(at("2024-04-01 00:00", BERLIN))
    admitted = await quota.store.admit("r2", [budget], Charge(dollars=0.6), lease=60)
    assert isinstance(admitted, Admitted) and admitted.reset_after == {budget.key: 24 * 3600.0}


async def test_a_25_hour_day_lasts_25_hours(quota: Quota) -> None:
    budget = usd_per_day(limit=1.0, tz=BERLIN)
    quota.clock.set(at("2024-10-27 00:30", BERLIN))  # clocks go back from 03:00 to 02:00 tonight
    first = await quota.store.admit("r1", [budget], Charge(dollars=1.0), lease=60)
    assert isinstance(first, Admitted) and first.reset_after == {budget.key: 24.5 * 3600}
    await quota.store.settle("r1", Charge(dollars=1.0))
    quota.clock.advance(24 * 3600)  # 23:30 local: still the same day
    assert isinstance(await quota.store.admit("r2", [budget], Charge(dollars=0.1), lease=60), Denied)
    quota.clock.advance(0.5 * 3600)
    assert isinstance(await quota.store.admit("r2", [budget], Charge(dollars=0.1), lease=60), Admitted)


async def test_a_day_whose_midnight_does_not_exist_starts_at_the_jump(quota: Quota) -> None:
    budget = usd_per_day(limit=1.0, tz="America/Santiago")  # 2024-09-08: 00:00 jumps to 01:00
    quota.clock.set(at("2024-09-07 23:59:59", "America/Santiago"))
    first = await quota.store.admit("r1", [budget], Charge(dollars=1.0), lease=60)
    assert isinstance(first, Admitted) and first.reset_after == {budget.key: 1.0}
    quota.clock.advance(1)  # now 01:00 local, the first instant of the 8th: a 23-hour day
    second = await quota.store.admit("r2", [budget], Charge(dollars=1.0), lease=60)
    assert isinstance(second, Admitted) and second.reset_after == {budget.key: 23 * 3600.0}


async def test_a_calendar_month_turns_over(quota: Quota) -> None:
    budget = usd_per_month(limit=10.0, tz=BERLIN)
    quota.clock.set(at("2024-02-29 23:59:00", BERLIN))
    first = await quota.store.admit("r1", [budget], Charge(dollars=10.0), lease=30)
    assert isinstance(first, Admitted) and first.reset_after == {budget.key: 60.0}
    denied = await quota.store.admit("r2", [budget], Charge(dollars=1.0), lease=30)
    assert isinstance(denied, Denied) and denied.retry_after == 60.0
    quota.clock.advance(60)
    march = await quota.store.admit("r2", [budget], Charge(dollars=1.0), lease=30)
    # March has 31 days and loses an hour to DST on the 31st.
    assert isinstance(march, Admitted) and march.reset_after == {budget.key: (31 * 24 - 1) * 3600.0}
    [usage] = await quota.store.usage([budget])
    assert usage.reserved == 1.0 and usage.used == 0.0


async def test_reset_after_without_usage(quota: Quota) -> None:
    quota.clock.set(T0)
    minute, day = tpm(limit=10), usd_per_day(tz="UTC")
    assert [u.reset_after for u in await quota.store.usage([minute, day])] == [None, 6000.0]
