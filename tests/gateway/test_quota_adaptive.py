"""Reservations and streams: strict reserves each request's whole output bound, adaptive a learned
percentile (LiteLLM PR #38647, #35524: worst-case reservations lock out agents that spend ~$0). Streams
are charged one progress block ahead of what they send and extend their reservation as they grow; when
the budget runs out mid-stream the stream is cut with an error event both SDKs raise, and charged for what
was generated. Non-streamed requests cannot be cut: under `adaptive` their overshoot is bounded by
Σ (max output - reservation) over the requests in flight, which this file measures and prints. And a
reservation lives as long as its request, however long that is.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from harness import GatewayUnderTest
from test_quota_schedule import clocked_gateway

from fleetplane.gateway.quota.policy import QuotaPolicy
from fleetplane.sim.process import SimProcess
from fleetplane.telemetry.tokens import count_openai_chat

BLOCK: int = inspect.signature(QuotaPolicy).parameters["block"].default
LEARN = [{"role": "user", "content": "short [[sim output_tokens=5]]"}]
LEARN_INPUT = count_openai_chat({"messages": LEARN})
SAMPLES = 20  # OutputStats' min_samples: until then an adaptive reservation is the strict bound
MAX_TOKENS = 100
START = 1_700_000_000.0


def quota(name: str, limits: str, **extra: str) -> str:
    more = "".join(f"  {k}: {v}\n" for k, v in extra.items())
    return (
        "apiVersion: fleetplane.dev/v1alpha1\nkind: Quota\n"
        f"metadata: {{name: {name}}}\nspec:\n  target: {{team: support}}\n  limits: {limits}\n{more}---\n"
    )


def usage_of(gateway: GatewayUnderTest, name: str) -> dict[str, Any]:
    rows = httpx.get(gateway.url + "/admin/quotas", timeout=10).json()["quotas"]
    [row] = [r for r in rows if r["rule"] == f"Quota/{name}"]
    return {lim["name"]: lim for lim in row["limits"]}


def auth(gateway: GatewayUnderTest) -> dict[str, str]:
    return {"authorization": f"Bearer {gateway.keys['full']}"}


def learn(gateway: GatewayUnderTest, samples: int = SAMPLES) -> int:
    """`samples` completed requests of 5 output tokens each; returns the tokens they used. (Their own
    max_tokens is 5 so that, reserved strictly while there are too few samples, they fit small limits.)"""
    for _ in range(samples):
        response = httpx.post(
            gateway.v1 + "/chat/completions",
            json={"model": "solo", "messages": LEARN, "max_tokens": 5},
            headers=auth(gateway),
            timeout=30,
        )
        assert response.status_code == 200
    return samples * (LEARN_INPUT + 5)


SLOW_START = [{"role": "user", "content": "slow start [[sim ttft_ms=5000 output_tokens=5]]"}]


async def _reserved_while_waiting_for_the_first_token(gateway: GatewayUnderTest) -> float:
    """Start a stream whose first token comes late, read its reservation while it waits, then leave."""
    body = {"model": "solo", "stream": True, "max_tokens": MAX_TOKENS, "messages": SLOW_START}
    async with httpx.AsyncClient(timeout=30) as client:
        stream = asyncio.create_task(
            client.post(gateway.v1 + "/chat/completions", json=body, headers=auth(gateway))
        )
        try:
            while True:
                tpm = (await client.get(gateway.url + "/admin/quotas")).json()["quotas"][0]["limits"][0]
                if tpm["reserved"]:
                    return float(tpm["reserved"])
                assert not stream.done(), stream.result()
                await asyncio.sleep(0.01)
        finally:
            stream.cancel()


def test_the_reservation_drops_to_the_learned_percentile(make_gateway: Any) -> None:
    gateway = make_gateway(extra=quota("adaptive", "{tpm: 1000000}", reservation="adaptive"))
    prompt = count_openai_chat({"messages": SLOW_START})
    # Too few samples yet: the strict bound, the request's max_tokens.
    assert asyncio.run(_reserved_while_waiting_for_the_first_token(gateway)) == prompt + MAX_TOKENS
    learn(gateway)
    # Twenty outputs of 5 tokens: their p95 is 5.
    assert asyncio.run(_reserved_while_waiting_for_the_first_token(gateway)) == prompt + 5
    # Both streams were abandoned before their first token: each is charged its prompt, nothing stays
    # reserved (settled as the gateway notices the client left).
    for _ in range(200):
        tpm = usage_of(gateway, "adaptive")["tpm"]
        if tpm["reserved"] == 0:
            break
        time.sleep(0.05)
    assert (tpm["used"], tpm["reserved"]) == (SAMPLES * (LEARN_INPUT + 5) + 2 * prompt, 0)


def test_a_stream_that_outgrows_its_reservation_extends_it(make_gateway: Any) -> None:
    gateway = make_gateway(extra=quota("adaptive", "{tpm: 1000000}", reservation="adaptive"))
    used = learn(gateway)
    ask = [{"role": "user", "content": "long one [[sim output_tokens=80]]"}]
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0)
    chunks = list(
        client.chat.completions.create(model="solo", messages=ask, max_tokens=MAX_TOKENS, stream=True)  # type: ignore[arg-type]
    )
    received = sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
    assert received == 80  # reserved 5, extended block by block, never cut
    tpm = usage_of(gateway, "adaptive")["tpm"]
    assert (tpm["used"], tpm["reserved"]) == (used + count_openai_chat({"messages": ask}) + 80, 0)


def test_a_strict_stream_admitted_at_the_limit_is_never_cut(make_gateway: Any) -> None:
    """Regression: the progress block asked for tokens past max_tokens, so a strict stream that had
    reserved its whole bound was cut at its first token when the limit had no room beyond it."""
    ask = [{"role": "user", "content": "exactly [[sim output_tokens=10]]"}]
    prompt = count_openai_chat({"messages": ask})
    gateway = make_gateway(extra=quota("strict", f"{{tpm: {prompt + 10}}}"))
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0)
    chunks = list(client.chat.completions.create(model="solo", messages=ask, max_tokens=10, stream=True))  # type: ignore[arg-type]
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 10
    tpm = usage_of(gateway, "strict")["tpm"]
    assert (tpm["used"], tpm["reserved"]) == (prompt + 10, 0)


RUN_LONG = [{"role": "user", "content": "run long [[sim tps=100 output_tokens=300]]"}]
RUN_LONG_INPUT = count_openai_chat({"messages": RUN_LONG})
ROOM = 70  # output tokens the limit has room for: admitted on 5, extended to 33 and 66, refused at 99


def _charged_stream(gateway: GatewayUnderTest, used: int, received: int) -> int:
    """Output tokens charged for the stream that was cut, after checking counters against the ledger."""
    records = gateway.usage(at_least=SAMPLES + 1)
    cut = records[-1]
    assert (cut.status, cut.error_type, cut.stream) == (200, "stream_broken", True)
    tpm = usage_of(gateway, "adaptive")["tpm"]
    assert tpm["reserved"] == 0
    assert tpm["used"] == used + cut.input_tokens + cut.output_tokens  # the counter is the ledger
    # Charged for what was generated up to the cut: everything the client received, and no more than
    # the limit had room for.
    assert received <= cut.output_tokens <= ROOM
    return cut.output_tokens


def test_the_openai_sdk_raises_when_the_budget_runs_out_mid_stream(make_gateway: Any) -> None:
    limit_for = SAMPLES * (LEARN_INPUT + 5) + RUN_LONG_INPUT + ROOM
    gateway = make_gateway(extra=quota("adaptive", f"{{tpm: {limit_for}}}", reservation="adaptive"))
    used = learn(gateway)
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0)
    received = 0
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(
            model="solo",
            messages=RUN_LONG,  # type: ignore[arg-type]
            max_tokens=400,
            stream=True,
        ):
            received += sum(1 for c in chunk.choices if c.delta.content)
    assert raised.value.message.startswith(
        "The stream was stopped: Quota exceeded for Quota/adaptive (team=support): the tpm limit is "
        f"{limit_for};"
    )
    assert 2 * BLOCK <= received < 300  # two extensions fitted; the third did not
    charged = _charged_stream(gateway, used, received)
    print(f"\nopenai stream cut: {received} tokens received, {charged} charged")


def test_the_anthropic_sdk_raises_when_the_budget_runs_out_mid_stream(make_gateway: Any) -> None:
    limit_for = SAMPLES * (LEARN_INPUT + 5) + RUN_LONG_INPUT + ROOM
    gateway = make_gateway(extra=quota("adaptive", f"{{tpm: {limit_for}}}", reservation="adaptive"))
    used = learn(gateway)
    client = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.keys["full"], max_retries=0)
    received = 0
    with (
        pytest.raises(anthropic.APIError) as raised,
        client.messages.stream(model="solo", max_tokens=400, messages=RUN_LONG) as stream,  # type: ignore[arg-type]
    ):
        for event in stream:
            if event.type == "content_block_delta":
                received += 1
    assert "The stream was stopped: Quota exceeded for Quota/adaptive (team=support)" in str(raised.value)
    assert 2 * BLOCK <= received < 300
    charged = _charged_stream(gateway, used, received)
    print(f"\nanthropic stream cut: {received} tokens received, {charged} charged")


BURST = [{"role": "user", "content": "burst [[sim ttft_ms=300 output_tokens=60]]"}]
BURST_INPUT = count_openai_chat({"messages": BURST})


def test_non_streamed_overshoot_under_concurrency_stays_within_its_bound(make_gateway: Any) -> None:
    # p50 of twenty outputs of 5 is 5, and stays 5 until twenty longer outputs have completed, so every
    # request of the burst below is admitted on a reservation of 5 output tokens.
    room = 10 * (BURST_INPUT + 5) + (BURST_INPUT + 5) // 2
    used = SAMPLES * (LEARN_INPUT + 5)
    limit = used + room
    gateway = make_gateway(
        extra=quota("adaptive", f"{{tpm: {limit}}}", reservation="adaptive", adaptivePercentile="0.5")
    )
    assert learn(gateway) == used

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=40)) as client:

            async def one() -> int:
                response = await client.post(
                    gateway.v1 + "/chat/completions",
                    json={"model": "solo", "messages": BURST, "max_tokens": MAX_TOKENS},
                    headers=auth(gateway),
                )
                return response.status_code

            return await asyncio.gather(*(one() for _ in range(40)))

    statuses = asyncio.run(burst())
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429} and 1 <= admitted <= 10
    window = usage_of(gateway, "adaptive")["tpm"]
    assert window["reserved"] == 0
    assert window["used"] == used + admitted * (BURST_INPUT + 60)
    bound = admitted * (MAX_TOKENS - 5)  # Σ over the admitted requests of (max output - reservation)
    overshoot = window["used"] - limit
    print(
        f"\nadaptive, non-streamed: {admitted} of 40 admitted; window {window['used']:.0f} of {limit} "
        f"(overshoot ratio {window['used'] / limit:.3f}; {overshoot:+.0f} tokens, bound {bound})"
    )
    assert overshoot <= bound


@pytest.mark.anyio
async def test_a_request_longer_than_the_lease_keeps_its_reservation_and_is_charged(
    tmp_path: Path, sim: SimProcess
) -> None:
    """Regression: nothing renewed a non-streamed request's lease, so one that took longer than the
    lease (120 s; a model's timeout is 600 s) lost its reservation and concurrency place to the sweep
    mid-call, and its usage was never charged (settling an expired reservation changes nothing). The
    gateway now renews the leases of what it has in flight; only a dead gateway's leases run out."""
    ask = [{"role": "user", "content": "think long [[sim ttft_ms=3000 output_tokens=5]]"}]
    prompt = count_openai_chat({"messages": ask})
    # Per day: a window that still holds, minutes later, what the request reserved when it was admitted.
    extra = quota("long", "{tpd: 1000000, concurrent: 5}")
    async with clocked_gateway(tmp_path, sim.base_url, extra, start=START, solo_timeout="10m") as gw:
        lease = gw.runtime.settings.quota_lease
        call = asyncio.create_task(
            gw.client.post(
                "/v1/chat/completions",
                json={"model": "solo", "messages": ask, "max_tokens": 10},
                headers={"authorization": f"Bearer {gw.keys['full']}"},
            )
        )
        while not (await gw.quotas())[("Quota/long", "team=support")]["limits"][0]["reserved"]:
            assert not call.done(), call.result()
            await asyncio.sleep(0.01)
        for _ in range(int(1.5 * lease / 5)):  # the clocks run 1.5 leases on while the upstream thinks
            await gw.advance(5)
        limits = {lim["name"]: lim for lim in (await gw.quotas())[("Quota/long", "team=support")]["limits"]}
        assert (limits["tpd"]["reserved"], limits["concurrent"]["used"]) == (prompt + 10, 1)
        assert not call.done()
        assert (await call).status_code == 200
        limits = {lim["name"]: lim for lim in (await gw.quotas())[("Quota/long", "team=support")]["limits"]}
        assert (limits["tpd"]["used"], limits["tpd"]["reserved"]) == (prompt + 5, 0)
        assert limits["concurrent"]["used"] == 0
