"""Both breaker stores behind one fixture, so every semantic test runs in process and on real Redis."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from breaker_support import START, MakeStore

from fleetplane.state.breaker import BreakerStore, MemoryBreakerStore, RedisBreakerStore
from fleetplane.state.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[MakeStore]:
    """A factory of stores sharing one state: on Redis each call is another "replica" (a new client)."""
    made: list[BreakerStore] = []
    if request.param == "memory":
        memory = MemoryBreakerStore(clock=clock)

        def make() -> BreakerStore:
            made.append(memory)
            return memory

    else:
        url = request.getfixturevalue("redis_url")

        def make() -> BreakerStore:
            made.append(RedisBreakerStore(url, clock=clock))
            return made[-1]

    yield make
    for store in made:
        await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> BreakerStore:
    return make_store()
