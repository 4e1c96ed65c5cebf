"""Keys that may wait for quota (`wait: {max, priority}`) instead of a 429 at once: a waiting request is
admitted when another request's reservation is released or when its window slides, and never waits past
its maximum; interactive waiters go before batch ones, and tenants take turns.

The gateway runs on a `ManualClock` (test_quota_schedule.clocked_gateway): waits end when the test moves
the clock, so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from test_quota_schedule import ClockedGateway, clocked_gateway, quota_doc

from fleetplane.gateway.quota.waiting import WaitQueue
from fleetplane.sim.process import SimProcess
from fleetplane.state.clock import ManualClock

pytestmark = pytest.mark.anyio

START = 1_700_000_000.0  # a multiple of the 5 s slot: usage charged now leaves the minute window at +60 s
SLOW = [{"role": "user", "content": "hold the line [[sim tps=5 output_tokens=100]]"}]


def key(name: str, wait: str, agent: str) -> str:
    return (
        "apiVersion: fleetplane.dev/v1alpha1\nkind: VirtualKey\n"
        f"metadata: {{name: {name}}}\nspec: {{team: support, agent: {agent}, wait: {wait}}}\n---\n"
    )


ONE_AT_A_TIME = (
    quota_doc("one-at-a-time", "  target: {team: support}\n  limits: {concurrent: 1}\n")
    + key("patient", "{max: 3s}", "waiter")
    + key("eager", "{max: 1m, priority: interactive}", "eager")
    + key("background", "{max: 1m, priority: batch}", "background")
)


@asynccontextmanager
async def holding(gw: ClockedGateway, key: str = "full") -> AsyncIterator[httpx.Response]:
    """A slow stream that holds the team's one concurrency place until the block is left."""
    async with gw.client.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "solo", "stream": True, "max_tokens": 200, "messages": SLOW},
        headers={"authorization": f"Bearer {gw.keys[key]}"},
    ) as response:
        assert response.status_code == 200
        yield response


async def queued(gw: ClockedGateway, count: int, *pending: asyncio.Task[httpx.Response]) -> None:
    """Until `count` requests wait in the gateway's queue (each was denied once and is waiting)."""
    while len(gw.runtime.quota.queue) != count:
        assert not any(task.done() for task in pending), [t.result() for t in pending if t.done()]
        await asyncio.sleep(0.01)


async def test_a_waiting_request_is_admitted_when_a_reservation_is_released(
    tmp_path: Path, sim: SimProcess
) -> None:
    async with clocked_gateway(tmp_path, sim.base_url, ONE_AT_A_TIME, start=START) as gw:
        async with holding(gw):
            assert (await gw.chat("full")).status_code == 429  # a key without `wait` hears it at once
            waiting = asyncio.create_task(gw.chat("patient"))
            await queued(gw, 1, waiting)
        # The holder left: its release wakes the waiter, which is admitted.
        answer = await waiting
        assert answer.status_code == 200
        assert len(gw.runtime.quota.queue) == 0
        row = (await gw.quotas())[("Quota/one-at-a-time", "team=support")]["limits"][0]
        assert (row["used"], row["reserved"]) == (0, 0)
    assert sim.stats()["models"]["sim-small"]["requests_total"] == 2  # the holder and the waiter


async def test_a_request_never_waits_past_its_maximum(tmp_path: Path, sim: SimProcess) -> None:
    async with clocked_gateway(tmp_path, sim.base_url, ONE_AT_A_TIME, start=START) as gw, holding(gw):
        waiting = asyncio.create_task(gw.chat("patient"))  # wait: {max: 3s}
        await queued(gw, 1, waiting)
        await gw.advance(2)
        assert not waiting.done()
        await gw.advance(1)
        refused = await waiting
        assert refused.status_code == 429
        assert refused.headers["x-fleetplane-quota-limit"] == "concurrent"
        assert "the concurrent limit is 1; 1 used" in refused.json()["error"]["message"]
        assert len(gw.runtime.quota.queue) == 0
    # One request, one refusal: it never reached the upstream (only the holder did).
    assert sim.stats()["models"]["sim-small"]["requests_total"] == 1


async def test_a_waiting_request_is_admitted_when_its_window_slides(tmp_path: Path, sim: SimProcess) -> None:
    extra = quota_doc("per-minute", "  target: {key: slider}\n  limits: {rpm: 1}\n") + key(
        "slider", "{max: 90s}", "slider"
    )
    async with clocked_gateway(tmp_path, sim.base_url, extra, start=START, solo_timeout="2m") as gw:
        assert (await gw.chat("slider")).status_code == 200
        waiting = asyncio.create_task(gw.chat("slider"))
        await queued(gw, 1, waiting)
        await gw.advance(59)  # the first request's slot is still in the window
        assert not waiting.done()
        await gw.advance(1)  # now it has left
        assert (await waiting).status_code == 200
        row = (await gw.quotas())[("Quota/per-minute", "key=slider")]["limits"][0]
        assert row["used"] == 1  # the first one left the window; the waiter is the one counted


async def test_an_interactive_waiter_goes_before_a_batch_one_that_came_first(
    tmp_path: Path, sim: SimProcess
) -> None:
    async with clocked_gateway(tmp_path, sim.base_url, ONE_AT_A_TIME, start=START) as gw:
        async with holding(gw):
            batch = asyncio.create_task(gw.chat("background"))
            await queued(gw, 1, batch)
            interactive_stream = gw.client.stream(
                "POST",
                "/v1/chat/completions",
                json={"model": "solo", "stream": True, "max_tokens": 200, "messages": SLOW},
                headers={"authorization": f"Bearer {gw.keys['eager']}"},
            )
            interactive = asyncio.create_task(interactive_stream.__aenter__())
            await queued(gw, 2, batch, interactive)
        # The place the holder left goes to the interactive stream; the batch request still waits.
        response = await interactive
        assert response.status_code == 200
        assert not batch.done() and len(gw.runtime.quota.queue) == 1
        await interactive_stream.__aexit__(None, None, None)
        assert (await batch).status_code == 200


# -- the queue's order ----------------------------------------------------------------------------------


async def _enqueue(
    queue: WaitQueue, woken: list[str], *waiters: tuple[str, str, str]
) -> list[asyncio.Task[None]]:
    async def wait(name: str, priority: str, tenant: str) -> None:
        await queue.wait(priority=priority, tenant=tenant, retry_after=None, timeout=60)
        woken.append(name)

    tasks = []
    for name, priority, tenant in waiters:
        tasks.append(asyncio.create_task(wait(name, priority, tenant)))
        await asyncio.sleep(0)  # each joins the queue in this order
    return tasks


async def _let_run() -> None:
    """Let woken waiters run to their end (a few loop turns each)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def _notify_one_by_one(queue: WaitQueue, times: int) -> None:
    for _ in range(times):
        assert queue.notify() == 1
        await _let_run()


async def test_interactive_waiters_are_woken_before_batch_ones() -> None:
    queue = WaitQueue(clock=ManualClock())
    woken: list[str] = []
    tasks = await _enqueue(
        queue, woken, ("b1", "batch", "t1"), ("i1", "interactive", "t2"), ("b2", "batch", "t2"),
        ("i2", "interactive", "t1"),
    )  # fmt: skip
    assert len(queue) == 4
    await _notify_one_by_one(queue, 4)
    assert woken == ["i1", "i2", "b1", "b2"]
    await asyncio.gather(*tasks)
    assert len(queue) == 0 and queue.notify() == 0


async def test_tenants_take_turns_within_a_priority() -> None:
    queue = WaitQueue(clock=ManualClock())
    woken: list[str] = []
    tasks = await _enqueue(
        queue, woken, ("a1", "interactive", "a"), ("a2", "interactive", "a"), ("a3", "interactive", "a"),
        ("b1", "interactive", "b"), ("c1", "interactive", "c"), ("c2", "interactive", "c"),
    )  # fmt: skip
    await _notify_one_by_one(queue, 6)
    assert woken == ["a1", "b1", "c1", "a2", "c2", "a3"]  # one busy tenant cannot starve the others
    await asyncio.gather(*tasks)


async def test_notify_wakes_as_many_as_asked_whoever_holds_them() -> None:
    # A sweep that gives back N expired reservations wakes N waiters, even when one tenant holds most.
    queue = WaitQueue(clock=ManualClock())
    woken: list[str] = []
    tasks = await _enqueue(
        queue, woken, ("a1", "interactive", "a"), ("a2", "interactive", "a"), ("a3", "interactive", "a"),
        ("b1", "interactive", "b"), ("x1", "batch", "x"),
    )  # fmt: skip
    assert queue.notify(4) == 4
    await _let_run()
    assert woken == ["a1", "b1", "a2", "a3"]
    assert queue.notify(5) == 1 and len(queue) in (0, 1)
    await asyncio.gather(*tasks)
    assert woken[-1] == "x1"


async def test_a_waiter_wakes_by_itself_when_its_retry_after_passes() -> None:
    clock = ManualClock()
    queue = WaitQueue(clock=clock)
    waiter = asyncio.create_task(queue.wait(priority="batch", tenant="t", retry_after=5, timeout=60))
    await _let_run()
    clock.advance(4.5)
    await _let_run()
    assert not waiter.done()
    clock.advance(0.5)
    await waiter
    assert len(queue) == 0
