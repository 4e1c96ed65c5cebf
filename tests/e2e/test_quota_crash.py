"""Nothing leaks when clients cancel or a gateway dies (LiteLLM #27955, #20256, #39309: a concurrency
counter that leaked on cancelled streams meant a permanent 429 until someone reset Redis).

(a) 500 streams cancelled by their clients at every point — before the first token, right after the
    headers, after a few tokens, after more than a progress block — leave no reservation and no
    concurrency place behind, and the counters equal what the ledger recorded for them, exactly.
(b) A gateway killed with SIGKILL mid-stream leaves its reservations to their leases: once a lease has
    passed and a surviving replica has swept, every counter holds what the dead gateway had committed —
    between the tokens its clients received and that plus one progress block per stream.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fleet_procs import Replica, Replicas, auth, dollars, ledger, quota, tokens, write_fleet

from fleetplane.gateway.quota.policy import QuotaPolicy
from fleetplane.sim.process import SimProcess
from fleetplane.telemetry.tokens import count_openai_chat

BLOCK: int = inspect.signature(QuotaPolicy).parameters["block"].default  # 32 tokens
TEAM = ("Quota/team", "team=support")
GENEROUS = quota(
    "team",
    "{team: support}",
    "{tpm: 100000000, inputTpm: 100000000, outputTpm: 100000000, rpm: 100000, concurrent: 1000, "
    "usdPerDay: 100000}",
)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _settled(gateway: Replica) -> bool:
    limits = gateway.quotas()[TEAM]
    return limits["concurrent"]["used"] == 0 and all(lim["reserved"] == 0 for lim in limits.values())


def _content_tokens(line: str) -> int:
    """Content deltas in one SSE line of an OpenAI stream (the simulator sends one token per delta)."""
    if not line.startswith("data: ") or line == "data: [DONE]":
        return 0
    chunk = orjson.loads(line[6:])
    return sum(1 for choice in chunk.get("choices") or [] if (choice.get("delta") or {}).get("content"))


def _assert_counters_match(gateway: Replica, records: list[dict[str, Any]]) -> None:
    limits = gateway.quotas()[TEAM]
    assert limits["tpm"]["used"] == tokens(records)
    assert limits["input-tpm"]["used"] == sum(r["input_tokens"] for r in records)
    assert limits["output-tpm"]["used"] == sum(r["output_tokens"] for r in records)
    assert limits["rpm"]["used"] == sum(1 for r in records if r["input_tokens"] or r["output_tokens"])
    assert limits["usd-per-day"]["used"] == pytest.approx(float(dollars(records)), abs=1e-9)
    assert limits["concurrent"]["used"] == 0
    assert all(lim["reserved"] == 0 for lim in limits.values()), limits


async def _cancel_500(gateway: Replica, upstream: SimProcess) -> dict[str, int]:
    """200 streams cancelled while the upstream has not sent a token; 300 after k tokens."""
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=600)) as client:

        async def waiting_for_first_token(i: int) -> None:
            body = {
                "model": "slow",
                "stream": True,
                "max_tokens": 50,
                "messages": [{"role": "user", "content": f"hold {i} [[sim ttft_ms=60000 output_tokens=20]]"}],
            }
            async with client.stream("POST", gateway.v1 + "/chat/completions", json=body, headers=auth()):
                raise AssertionError("the upstream sent its first token within 60 s")

        async def after_tokens(i: int, k: int) -> int:
            body = {
                "model": "drip",
                "stream": True,
                "max_tokens": 400,
                # Far longer than any client stays: every one of these streams is cut by its client.
                "messages": [{"role": "user", "content": f"drip {i} [[sim tps=20 output_tokens=2000]]"}],
            }
            received = 0
            async with client.stream(
                "POST", gateway.v1 + "/chat/completions", json=body, headers=auth()
            ) as response:
                assert response.status_code == 200, (await response.aread()).decode()
                if k == 0:
                    return 0  # gone as soon as the headers arrived
                async for line in response.aiter_lines():
                    received += _content_tokens(line)
                    if received >= k:
                        break
            return received

        held = [asyncio.create_task(waiting_for_first_token(i)) for i in range(200)]
        points = itertools.cycle([0, 1, 2, 3, 5, 8, 13, 21, BLOCK + 1, BLOCK + 8])
        cut: list[int] = []
        for wave in range(3):  # 100 streams at a time beside the 200 held ones: two cores stay responsive
            cut += await asyncio.gather(*(after_tokens(100 * wave + i, next(points)) for i in range(100)))

        def all_sent() -> bool:
            return upstream.stats()["models"].get("sim-large", {}).get("streams", {}).get("started", 0) == 200

        while not await asyncio.to_thread(all_sent):  # noqa: ASYNC110 - polled over HTTP
            await asyncio.sleep(0.1)
        for task in held:
            task.cancel()
        outcomes = await asyncio.gather(*held, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
        return {"before_first_token": len(held), "after_tokens": len(cut), "tokens_received": sum(cut)}


def test_five_hundred_cancelled_streams_leave_nothing_reserved(
    tmp_path: Path, upstream: SimProcess, postgres_url: str, redis_url: str, replicas: Replicas
) -> None:
    fleet = write_fleet(tmp_path / "fleet", upstream.base_url, GENEROUS)
    gateway = replicas.start(fleet, database_url=postgres_url, redis_url=redis_url)

    summary = asyncio.run(_cancel_500(gateway, upstream))

    _wait_for(lambda: _settled(gateway), "every cancelled stream to settle")
    gateway.flush()
    records = ledger(postgres_url)
    assert len(records) == 500
    assert {(r["status"], r["client_disconnected"]) for r in records} == {(499, True)}
    _assert_counters_match(gateway, records)
    # What the clients were sent is charged (the rest is what the upstream generated before it stopped).
    drip = [r for r in records if r["model"] == "drip"]
    assert sum(r["output_tokens"] for r in drip) >= summary["tokens_received"]
    held = [r for r in records if r["model"] == "slow"]
    # The upstream had read each prompt when its client left: the input is charged, no output.
    assert all(r["output_tokens"] == 0 and r["input_tokens"] > 0 for r in held)
    stats = upstream.stats()["models"]
    assert stats["sim-large"]["streams"]["cancelled"] + stats["sim-medium"]["streams"]["cancelled"] == 500


LEASE = 5.0  # seconds; the runtime sweeps expired leases every 2 s (GatewaySettings.quota_sweep)
STREAMS = 6


def _drip(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"long {i} [[sim tps=40 output_tokens=2000]]"}]


async def _streams_until_killed(victim: Replica) -> list[int]:
    """Six slow streams through `victim`; once each has received past a progress block, SIGKILL it.
    Returns the content tokens each client had received when its connection died."""
    received = [0] * STREAMS
    async with httpx.AsyncClient(timeout=60) as client:

        async def read(i: int) -> None:
            body = {"model": "drip", "stream": True, "max_tokens": 3000, "messages": _drip(i)}
            try:
                async with client.stream(
                    "POST", victim.v1 + "/chat/completions", json=body, headers=auth()
                ) as response:
                    assert response.status_code == 200
                    async for line in response.aiter_lines():
                        received[i] += _content_tokens(line)
            except httpx.HTTPError:
                pass  # the gateway died under it

        readers = [asyncio.create_task(read(i)) for i in range(STREAMS)]
        while min(received) <= BLOCK + 8:
            assert not any(task.done() for task in readers), "a stream ended before the gateway was killed"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(victim.kill)
        await asyncio.gather(*readers)
    return received


def test_a_gateway_killed_mid_stream_leaves_what_it_committed_after_its_lease(
    tmp_path: Path, upstream: SimProcess, postgres_url: str, redis_url: str, replicas: Replicas
) -> None:
    fleet = write_fleet(tmp_path / "fleet", upstream.base_url, GENEROUS)
    lease = {"FLEETPLANE_QUOTA_LEASE": str(LEASE)}
    victim = replicas.start(fleet, database_url=postgres_url, redis_url=redis_url, env=lease)
    survivor = replicas.start(fleet, database_url=postgres_url, redis_url=redis_url, env=lease)

    received = asyncio.run(_streams_until_killed(victim))

    # Until the lease passes, the dead gateway's streams still hold their places and reservations.
    held = survivor.quotas()[TEAM]
    assert held["concurrent"]["used"] == STREAMS
    assert held["tpm"]["reserved"] > 0
    # The survivor's own sweep (not /admin/quotas, which only reads) gives them back.
    _wait_for(lambda: _settled(survivor), "the leases to expire and the survivor to sweep them")

    limits = survivor.quotas()[TEAM]
    prompt = sum(count_openai_chat({"messages": _drip(i)}) for i in range(STREAMS))
    sent = sum(received)
    bound = STREAMS * BLOCK
    print(
        f"\nkilled mid-stream: clients received {received} tokens; output committed "
        f"{limits['output-tpm']['used']:.0f} (bound {sent}..{sent + bound})"
    )
    # Charged before sent: nothing a client received is missing; at most one block ahead per stream.
    assert sent <= limits["output-tpm"]["used"] <= sent + bound
    assert limits["input-tpm"]["used"] == prompt
    assert prompt + sent <= limits["tpm"]["used"] <= prompt + sent + bound
    assert limits["tpm"]["used"] == limits["input-tpm"]["used"] + limits["output-tpm"]["used"]
    assert limits["rpm"]["used"] == STREAMS
    committed_usd = (prompt * 1.0 + limits["output-tpm"]["used"] * 2.0) / 1e6  # solo's price per million
    assert limits["usd-per-day"]["used"] == pytest.approx(committed_usd, rel=1e-9)
    assert limits["concurrent"]["used"] == 0
    assert all(lim["reserved"] == 0 for lim in limits.values())
