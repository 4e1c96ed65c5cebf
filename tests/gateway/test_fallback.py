"""The L3 fallback chain against a simulator whose faults are switched at run time."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from harness import GatewayUnderTest

from fleetplane.sim.process import SimProcess

HELLO = [{"role": "user", "content": "hello [[sim output_tokens=5]]"}]


def chat(gateway: GatewayUnderTest, model: str = "chain", key: str = "full", **extra: Any) -> httpx.Response:
    return httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": model, "messages": HELLO, **extra},
        headers={"authorization": f"Bearer {gateway.keys[key]}"},
        timeout=30,
    )


def cooldowns(gateway: GatewayUnderTest) -> dict[str, float]:
    config = httpx.get(gateway.url + "/admin/gateway/config", timeout=10).json()
    return {k: v for m in config["models"] for k, v in m["cooldowns"].items()}


def served(sim: SimProcess, model: str) -> dict[str, int]:
    stats = sim.stats()["models"].get(model, {})
    return {str(k): v for k, v in stats.get("requests", {}).items()}


def test_an_outage_on_the_first_deployment_moves_traffic_to_the_next(
    gateway: GatewayUnderTest, sim: SimProcess
) -> None:
    sim.add_fault("error", "sim-large", status=503)
    first = chat(gateway)
    assert first.status_code == 200
    assert first.headers["x-fleetplane-deployment"] == "sim/sim-medium"
    assert first.headers["x-fleetplane-fallback"] == "true"
    assert first.headers["x-fleetplane-attempts"] == "2"
    # The failed deployment now rests: the next request goes straight to the second one.
    second = chat(gateway)
    assert second.headers["x-fleetplane-deployment"] == "sim/sim-medium"
    assert second.headers["x-fleetplane-attempts"] == "1"
    assert served(sim, "sim-large") == {"503": 1}
    assert served(sim, "sim-medium") == {"200": 2}
    assert 25 < cooldowns(gateway)["sim/sim-large"] <= 30  # the model's cooldown: 30s
    records = gateway.usage()
    assert [(r.fallback, r.attempts, r.deployment_model) for r in records] == [
        (True, 2, "sim-medium"),
        (True, 1, "sim-medium"),
    ]
    assert all(r.provider == "sim" and r.deployment_model == "sim-medium" for r in records)


@pytest.mark.parametrize("mode", ["rate_limit", "timeout-like"])
def test_429_and_connection_failures_fall_back(gateway: GatewayUnderTest, sim: SimProcess, mode: str) -> None:
    if mode == "rate_limit":
        sim.add_fault("rate_limit", "sim-large", retry_after=7)
    else:
        sim.add_fault("truncate", "sim-large")
    response = chat(gateway)
    assert response.status_code == 200
    assert response.headers["x-fleetplane-deployment"] == "sim/sim-medium"
    if mode == "rate_limit":
        # retry-after from the upstream sets the cooldown, not the model's default.
        assert 5 < cooldowns(gateway)["sim/sim-large"] <= 7


def test_a_non_retryable_4xx_is_returned_and_not_retried(gateway: GatewayUnderTest, sim: SimProcess) -> None:
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": "chain", "messages": [{"role": "user", "content": "bad [[sim status=400]]"}]},
        headers={"authorization": f"Bearer {gateway.keys['full']}"},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.headers["x-fleetplane-error-source"] == "upstream"
    assert response.json()["error"]["message"].startswith("sim/sim-large answered 400")
    assert served(sim, "sim-medium") == {}
    assert cooldowns(gateway) == {}
    [record] = gateway.usage(at_least=1)
    assert (record.status, record.input_tokens, record.output_tokens, record.cost_usd) == (
        400,
        0,
        0,
        Decimal(0),
    )


def test_every_deployment_cooling_beyond_the_deadline_is_503_with_retry_after(
    make_gateway: Any, sim: SimProcess
) -> None:
    gateway = make_gateway(solo_timeout="2s")
    sim.add_fault("error", "sim-small", status=503, retry_after=20)
    first = chat(gateway, "solo")
    assert first.status_code == 503
    body = first.json()["error"]
    assert body["code"] == "no_deployment_available"
    assert body["message"] == "No deployment of model 'solo' could serve the request (sim/sim-small: 503)."
    assert first.headers["x-fleetplane-error-source"] == "gateway"
    assert 19 <= int(first.headers["retry-after"]) <= 20
    # Still resting: refused without calling the upstream again.
    second = chat(gateway, "solo")
    assert second.status_code == 503
    assert "all deployments are cooling down" in second.json()["error"]["message"]
    assert served(sim, "sim-small") == {"503": 1}
    assert gateway.charged() == (0, 0, Decimal(0))


def test_when_every_deployment_cools_the_request_waits_for_the_first_to_recover(
    make_gateway: Any, sim: SimProcess
) -> None:
    gateway = make_gateway(solo_timeout="20s")
    fault = sim.add_fault("error", "sim-small", status=503, retry_after=1)

    def heal() -> None:
        time.sleep(0.3)
        sim.clear_faults(fault["id"])

    threading.Thread(target=heal).start()
    started = time.monotonic()
    response = chat(gateway, "solo")
    assert response.status_code == 200
    assert response.headers["x-fleetplane-attempts"] == "2"
    assert time.monotonic() - started >= 0.9  # it waited out the upstream's retry-after
    assert served(sim, "sim-small") == {"503": 1, "200": 1}


def test_an_upstream_429_everywhere_reaches_the_client_as_the_upstreams(
    make_gateway: Any, sim: SimProcess
) -> None:
    gateway = make_gateway(solo_timeout="2s")
    sim.add_fault("rate_limit", "sim-small", retry_after=30)
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="solo", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.response.headers["x-fleetplane-error-source"] == "upstream"
    assert int(caught.value.response.headers["retry-after"]) == 30
    # While the deployment rests, the gateway itself refuses, and says so.
    response = chat(gateway, "solo")
    assert response.status_code == 503
    assert response.headers["x-fleetplane-error-source"] == "gateway"
    assert 28 <= int(response.headers["retry-after"]) <= 30
    assert served(sim, "sim-small") == {"429": 1}


def test_a_stream_whose_first_deployment_fails_falls_back_before_any_byte(
    gateway: GatewayUnderTest, sim: SimProcess
) -> None:
    sim.add_fault("error", "sim-large", status=500)
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="chain", messages=HELLO, stream=True
    ) as raw:  # type: ignore[arg-type]
        assert raw.headers["x-fleetplane-deployment"] == "sim/sim-medium"
        chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).split().__len__() == 5


def test_a_stream_cut_by_the_upstream_ends_with_an_error_event_and_is_charged_for_what_came(
    gateway: GatewayUnderTest, sim: SimProcess
) -> None:
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0)
    pieces: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(
            model="solo",
            messages=[{"role": "user", "content": "cut [[sim output_tokens=50 truncate_after=6]]"}],
            stream=True,
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    assert str(caught.value) == "sim/sim-small: the upstream connection broke mid-stream (ClientPayloadError)"
    [record] = gateway.usage(at_least=1)
    assert record.usage_source == "counted"
    assert record.output_tokens == len("".join(pieces).split()) > 0
    assert record.cost_usd > 0


def test_a_deployment_slower_than_its_timeout_is_abandoned_for_the_next(
    gateway: GatewayUnderTest, sim: SimProcess
) -> None:
    sim.add_fault("slow", "sim-large", latency_ms=4000)
    response = chat(gateway)
    assert response.status_code == 200
    assert response.headers["x-fleetplane-deployment"] == "sim/sim-medium"
    assert "sim/sim-large" in cooldowns(gateway)


def test_deployments_of_one_step_share_traffic_by_weight(gateway: GatewayUnderTest, sim: SimProcess) -> None:
    served_by = [chat(gateway, "split").headers["x-fleetplane-deployment"] for _ in range(200)]
    large = served_by.count("sim/sim-large")
    assert served_by.count("sim/sim-large") + served_by.count("sim/sim-medium") == 200
    # weights 3:1 -> 150 expected; the band is four standard deviations of Binomial(200, 0.75)
    assert 125 <= large <= 175
    # when the whole first step rests, the next step serves
    sim.add_fault("error", "sim-large", status=503)
    sim.add_fault("error", "sim-medium", status=503)
    chat(gateway, "split")
    response = chat(gateway, "split")
    assert response.headers["x-fleetplane-deployment"] == "sim/sim-small"
    assert response.headers["x-fleetplane-fallback"] == "true"
