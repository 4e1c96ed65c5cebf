"""A Redis that cannot be reached, or that hangs, is one exception type for every operation, so the
gateway can decide to fail open in one place."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from breaker_support import spec_with

from fleetplane.state.breaker import BreakerStoreUnavailable, RedisBreakerStore, Step, Trigger
from fleetplane.state.clock import ManualClock

pytestmark = pytest.mark.anyio

SPEC = spec_with(Trigger("repeats", window=60, threshold=5, kind="sum"))


@pytest.fixture
async def refusing_url() -> AsyncIterator[str]:
    """A port nothing listens on: bind one, note it, close it."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    """A server that accepts connections and never answers: a Redis stuck or cut off mid-way."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_every_operation_raises_one_type_when_redis_is_down(refusing_url: str) -> None:
    store = RedisBreakerStore(refusing_url, clock=ManualClock())
    calls = [
        store.check(SPEC),
        store.observe(SPEC, "repeats", 1),
        store.probe_done(SPEC, good=True),
        store.reset(SPEC.key),
        store.snapshot(),
        store.snapshot([SPEC.key]),
        store.arrive([(SPEC, [Step("count", "repeats", member="f", ttl=60)])]),
        store.record([(SPEC, [Step("observe", "repeats", 1.0), Step("probe_done", good=True)])]),
    ]
    for call in calls:
        with pytest.raises(BreakerStoreUnavailable, match="breaker store unreachable"):
            await call
    await store.close()


async def test_a_redis_that_never_answers_is_unavailable_after_the_timeout(silent_url: str) -> None:
    store = RedisBreakerStore(silent_url, timeout=0.2)
    with pytest.raises(BreakerStoreUnavailable):
        await store.check(SPEC)
    await store.close()


async def test_a_bad_observation_is_a_value_error_not_an_outage(refusing_url: str) -> None:
    store = RedisBreakerStore(refusing_url)
    with pytest.raises(ValueError, match="has no trigger"):
        await store.observe(SPEC, "cost-velocity", 1)
    await store.close()
