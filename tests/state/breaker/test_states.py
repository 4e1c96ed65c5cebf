"""closed → open → half-open → closed, probe slots, back-off on re-trips and probe leases. Both stores."""

from __future__ import annotations

import pytest
from breaker_support import spec_with, value

from fleetplane.state.breaker import BreakerSpec, BreakerStore, Trigger
from fleetplane.state.clock import ManualClock

pytestmark = pytest.mark.anyio

REPEATS = Trigger("repeats", window=60, threshold=2, kind="sum")
ERRORS = Trigger("error-rate", window=60, threshold=0.5, kind="ratio", min_samples=4)


async def trip(store: BreakerStore, spec: BreakerSpec) -> None:
    for _ in range(3):
        verdict = await store.observe(spec, "repeats", 1)
    assert verdict.status == "open"


async def test_open_refuses_until_open_for_then_lets_one_probe_through(
    store: BreakerStore, clock: ManualClock
) -> None:
    spec = spec_with(REPEATS, open_for=30)
    await trip(store, spec)
    clock.advance(29.5)
    refused = await store.check(spec)
    assert (refused.status, refused.admitted, refused.probe) == ("open", False, False)
    assert refused.retry_after == pytest.approx(0.5)
    assert refused.reason == "repeats: 3 in 1min > 2"
    clock.advance(0.5)
    probe = await store.check(spec)
    assert (probe.status, probe.admitted, probe.probe, probe.retry_after) == ("half_open", True, True, None)
    assert probe.reason == refused.reason  # still says why it is not closed
    busy = await store.check(spec)
    assert (busy.status, busy.admitted, busy.probe) == ("half_open", False, False)
    assert busy.retry_after == 30  # at most open_for until a probe slot is sure to be free


async def test_close_after_good_probes_with_at_most_half_open_probes_at_once(
    store: BreakerStore, clock: ManualClock
) -> None:
    spec = spec_with(REPEATS, open_for=10, half_open_probes=2, close_after=3)
    await trip(store, spec)
    clock.advance(10)
    assert [(await store.check(spec)).probe for _ in range(3)] == [True, True, False]
    assert (await store.probe_done(spec, good=True)).status == "half_open"
    assert (await store.check(spec)).probe  # the freed slot
    assert (await store.check(spec)).admitted is False
    assert (await store.probe_done(spec, good=True)).status == "half_open"
    closed = await store.probe_done(spec, good=True)
    assert (closed.status, closed.admitted, closed.reason) == ("closed", True, None)
    assert (await store.check(spec)).status == "closed"
    # The probe still in flight when it closed reports late: nothing changes.
    assert (await store.probe_done(spec, good=False)).status == "closed"


async def test_a_bad_probe_reopens_with_open_for_doubled_up_to_the_cap(
    store: BreakerStore, clock: ManualClock
) -> None:
    spec = spec_with(REPEATS, open_for=10, max_open_for=25)
    await trip(store, spec)
    openings: list[float] = []
    for _ in range(3):
        clock.advance(openings[-1] if openings else 10)
        assert (await store.check(spec)).probe
        verdict = await store.probe_done(spec, good=False)
        assert verdict.status == "open"
        assert verdict.reason == "half-open probe failed; opened for repeats: 3 in 1min > 2"
        assert verdict.trigger == "repeats"
        assert verdict.retry_after is not None
        openings.append(verdict.retry_after)
    assert openings == [20, 25, 25]
    (snap,) = await store.snapshot([spec.key])
    assert snap.trips == 4


async def test_a_probe_that_trips_its_trigger_reopens_and_a_quiet_one_waits_for_probe_done(
    store: BreakerStore, clock: ManualClock
) -> None:
    spec = spec_with(REPEATS, open_for=10)
    await trip(store, spec)
    assert await value(store, spec, "repeats") == 0  # windows restart at the opening
    clock.advance(10)
    assert (await store.check(spec)).probe
    # The probe's own observations count in a fresh window; two repeats pass, a third trips.
    for _ in range(2):
        quiet = await store.observe(spec, "repeats", 1, probe=True)
        assert (quiet.status, quiet.admitted, quiet.probe) == ("half_open", True, True)
    assert (await store.check(spec)).admitted is False  # passing observations did not end the probe
    reopened = await store.observe(spec, "repeats", 1, probe=True)
    assert (reopened.status, reopened.retry_after, reopened.reason) == ("open", 20, "repeats: 3 in 1min > 2")
    # The same probe's report after it re-opened is ignored.
    assert (await store.probe_done(spec, good=True)).status == "open"


async def test_one_bad_ratio_probe_reopens_whatever_min_samples_says(
    store: BreakerStore, clock: ManualClock
) -> None:
    spec = spec_with(ERRORS, key="upstream-errors/deployment:sim/sim-large", open_for=5)
    for _ in range(4):
        await store.observe(spec, "error-rate", 0, bad=True)
    clock.advance(5)
    assert (await store.check(spec)).probe
    good = await store.observe(spec, "error-rate", 0, bad=False, probe=True)
    assert (good.status, good.admitted) == ("half_open", True)
    bad = await store.observe(spec, "error-rate", 0, bad=True, probe=True)
    assert (bad.status, bad.retry_after) == ("open", 10)
    assert bad.reason == "half-open probe failed; opened for error rate 100% > 50% (4 of 4 in 1min)"


async def test_a_retrip_soon_after_closing_backs_off_and_a_quiet_spell_forgives(
    store: BreakerStore, clock: ManualClock
) -> None:
    spec = spec_with(REPEATS, open_for=10, max_open_for=100)
    await trip(store, spec)
    clock.advance(10)
    await store.check(spec)
    assert (await store.probe_done(spec, good=True)).status == "closed"
    clock.advance(99)  # within max_open_for of closing: the loop is back, so is the back-off
    for _ in range(3):
        again = await store.observe(spec, "repeats", 1)
    assert (again.status, again.retry_after) == ("open", 20)
    clock.advance(20)
    await store.check(spec)
    await store.probe_done(spec, good=True)
    clock.advance(100)  # closed for max_open_for: the next trip starts over at open_for
    for _ in range(3):
        fresh = await store.observe(spec, "repeats", 1)
    assert (fresh.status, fresh.retry_after) == ("open", 10)


async def test_a_probe_that_never_reports_frees_its_slot_after_probe_timeout(
    store: BreakerStore, clock: ManualClock
) -> None:
    spec = spec_with(REPEATS, open_for=10, probe_timeout=60)
    await trip(store, spec)
    clock.advance(10)
    assert (await store.check(spec)).probe
    clock.advance(40)
    busy = await store.check(spec)
    assert (busy.admitted, busy.retry_after) == (False, 10)  # the lease runs out in 20 s; open_for caps
    clock.advance(20)
    assert (await store.check(spec)).admitted is False  # at the limit the lease still holds
    clock.advance(0.001)
    assert (await store.check(spec)).probe
    clock.advance(60.001)  # that one is lost too: a report now has no probe to end and changes nothing
    assert (await store.probe_done(spec, good=True)).status == "half_open"
    assert (await store.check(spec)).probe


async def test_observations_while_open_are_not_counted(store: BreakerStore, clock: ManualClock) -> None:
    spec = spec_with(REPEATS, open_for=10)
    await trip(store, spec)
    for _ in range(5):
        assert (await store.observe(spec, "repeats", 1)).status == "open"
    (snap,) = await store.snapshot([spec.key])
    assert (snap.trips, snap.values) == (1, {"repeats": 0.0})
    clock.advance(10)
    # Half-open, observations count again (a late answer from before the opening, say).
    assert (await store.observe(spec, "repeats", 1)).status == "half_open"
    assert await value(store, spec, "repeats") == 1


async def test_a_non_probe_observation_can_reopen_a_half_open_breaker(
    store: BreakerStore, clock: ManualClock
) -> None:
    spec = spec_with(REPEATS, open_for=10)
    await trip(store, spec)
    clock.advance(10)
    for _ in range(2):
        verdict = await store.observe(spec, "repeats", 1)
        assert (verdict.status, verdict.admitted, verdict.probe) == ("half_open", False, False)
    assert (await store.observe(spec, "repeats", 1)).retry_after == 20
