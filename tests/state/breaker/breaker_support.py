"""Helpers shared by the breaker tests (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

from collections.abc import Callable

from fleetplane.state.breaker import BreakerSpec, BreakerStore, Trigger

# On a slot boundary of every window the tests use (1, 6 and 30 s slots), so "the window slides" can be
# checked to the second.
START = 1_700_000_040.0

MakeStore = Callable[[], BreakerStore]


def spec_with(
    *triggers: Trigger,
    key: str = "loop-guard/agent:acme/support/bot",
    open_for: float = 30,
    max_open_for: float = 240,
    half_open_probes: int = 1,
    close_after: int = 1,
    probe_timeout: float = 120,
) -> BreakerSpec:
    return BreakerSpec(
        key=key,
        triggers=triggers,
        open_for=open_for,
        max_open_for=max_open_for,
        half_open_probes=half_open_probes,
        close_after=close_after,
        probe_timeout=probe_timeout,
    )


async def value(store: BreakerStore, spec: BreakerSpec, trigger: str) -> float:
    (snap,) = await store.snapshot([spec.key])
    return snap.values.get(trigger, 0.0)
