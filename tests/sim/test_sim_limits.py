"""Rate limits end to end through the ASGI app, on a hand-moved clock: exact headers, bodies and refills."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fleetplane.sim.app import SimApp
from fleetplane.sim.config import from_mapping
from fleetplane.state.clock import ManualClock

CONFIG = {
    "instant": True,
    "models": {
        "gpt": {"limits": {"rpm": 2, "tpm": 1000}},
        "claude": {"limits": {"rpm": 10, "input_tpm": 100, "output_tpm": 60}},
    },
}


def app_client(clock: ManualClock) -> httpx.AsyncClient:
    app = SimApp(from_mapping(CONFIG), clock=clock)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")


def limit_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if "ratelimit" in k or k == "retry-after"}


def chat(text: str) -> dict[str, Any]:
    return {"model": "gpt", "messages": [{"role": "user", "content": text}]}


@pytest.mark.anyio
async def test_openai_requests_per_minute() -> None:
    clock = ManualClock()
    async with app_client(clock) as client:
        first = await client.post("/v1/chat/completions", json=chat("[[sim output_tokens=10]]"))
        # 14 prompt tokens and exactly 10 completion tokens are charged at admission.
        assert first.json()["usage"]["total_tokens"] == 24
        assert limit_headers(first) == {
            "x-ratelimit-limit-requests": "2",
            "x-ratelimit-remaining-requests": "1",
            "x-ratelimit-reset-requests": "30s",
            "x-ratelimit-limit-tokens": "1000",
            "x-ratelimit-remaining-tokens": "976",
            "x-ratelimit-reset-tokens": "1.44s",
        }
        clock.advance(6)
        second = await client.post("/v1/chat/completions", json=chat("[[sim output_tokens=10]]"))
        assert second.headers["x-ratelimit-remaining-requests"] == "0"
        assert second.headers["x-ratelimit-reset-requests"] == "54s"
        third = await client.post("/v1/chat/completions", json=chat("[[sim output_tokens=10]]"))
        assert third.status_code == 429
        assert limit_headers(third) == {
            "x-ratelimit-limit-requests": "2",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "54s",
            "x-ratelimit-limit-tokens": "1000",
            # Six seconds refilled the first request's 24 tokens; only the second one's are missing.
            "x-ratelimit-remaining-tokens": "976",
            "x-ratelimit-reset-tokens": "1.44s",
            "retry-after": "24",
        }
        assert third.json() == {
            "error": {
                "message": "Rate limit reached for gpt in organization org-sim on requests per min "
                "(RPM): Limit 2, "
                "Requested 1. Please try again in 24s.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        clock.advance(24)
        fourth = await client.post("/v1/chat/completions", json=chat("[[sim output_tokens=10]]"))
        assert fourth.status_code == 200


@pytest.mark.anyio
async def test_openai_tokens_per_minute_and_too_large() -> None:
    clock = ManualClock()
    async with app_client(clock) as client:
        big = await client.post("/v1/chat/completions", json=chat("[[sim output_tokens=1000]]"))
        assert big.status_code == 429
        assert big.json()["error"]["type"] == "tokens"
        assert big.json()["error"]["message"].startswith(
            "Request too large for gpt in organization org-sim on tokens per min (TPM): Limit 1000, "
            "Requested "
        )
        ok = await client.post("/v1/chat/completions", json=chat("[[sim output_tokens=900]]"))
        assert ok.status_code == 200
        refused = await client.post("/v1/chat/completions", json=chat("[[sim output_tokens=200]]"))
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "tokens"
        needed = int(refused.json()["error"]["message"].split("Requested ")[1].split(".")[0])
        remaining = int(refused.headers["x-ratelimit-remaining-tokens"])
        assert int(refused.headers["retry-after"]) == -(-(needed - remaining) * 60 // 1000)
        # The refused request was not charged: one request remains.
        assert refused.headers["x-ratelimit-remaining-requests"] == "1"


@pytest.mark.anyio
async def test_anthropic_input_and_output_limits() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    headers = {"anthropic-version": "2023-06-01"}
    body = {
        "model": "claude",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "[[sim output_tokens=30]]"}],
    }
    async with app_client(clock) as client:
        first = await client.post("/v1/messages", json=body, headers=headers)
        assert first.status_code == 200
        assert first.json()["usage"]["input_tokens"] == 13
        assert limit_headers(first) == {
            "anthropic-ratelimit-requests-limit": "10",
            "anthropic-ratelimit-requests-remaining": "9",
            "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:06Z",
            "anthropic-ratelimit-tokens-limit": "60",
            "anthropic-ratelimit-tokens-remaining": "30",
            "anthropic-ratelimit-tokens-reset": "2027-01-15T08:00:30Z",
            "anthropic-ratelimit-input-tokens-limit": "100",
            "anthropic-ratelimit-input-tokens-remaining": "87",
            # 13 of 100 tokens per minute come back in 7.8 s, rounded up to the next whole second.
            "anthropic-ratelimit-input-tokens-reset": "2027-01-15T08:00:08Z",
            "anthropic-ratelimit-output-tokens-limit": "60",
            "anthropic-ratelimit-output-tokens-remaining": "30",
            "anthropic-ratelimit-output-tokens-reset": "2027-01-15T08:00:30Z",
        }
        body["messages"] = [{"role": "user", "content": "[[sim output_tokens=40]]"}]
        refused = await client.post("/v1/messages", json=body, headers=headers)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "10"
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert refused.json()["error"]["message"].startswith(
            "This request would exceed the rate limit for your organization (org-sim) of 60 output "
            "tokens per minute"
        )
        clock.advance(10)
        assert (await client.post("/v1/messages", json=body, headers=headers)).status_code == 200


@pytest.mark.anyio
async def test_seeded_replies_are_the_same_across_app_instances() -> None:
    body = chat("hello")

    async def text(seed: int) -> str:
        app = SimApp(from_mapping({**CONFIG, "seed": seed}), clock=ManualClock())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
            return str(
                (await client.post("/v1/chat/completions", json=body)).json()["choices"][0]["message"][
                    "content"
                ]
            )

    assert await text(1) == await text(1)
    assert await text(1) != await text(2)
