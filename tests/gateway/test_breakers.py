"""L2 circuit breakers through the gateway: each trigger trips, reports its reason, half-opens and
recovers; deployment breakers move traffic; state is shared between replicas."""

from __future__ import annotations

import time
from typing import Any

import httpx
from harness import GatewayUnderTest

from fleetplane.sim.process import SimProcess


def breaker(name: str, spec: str) -> str:
    return (
        f"apiVersion: fleetplane.dev/v1alpha1\nkind: Breaker\nmetadata: {{name: {name}}}\nspec:\n{spec}---\n"
    )


def chat(gateway: GatewayUnderTest, text: str = "loop [[sim output_tokens=3]]", model: str = "solo",
         **extra: Any) -> httpx.Response:  # fmt: skip
    return httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}], **extra},
        headers={"authorization": f"Bearer {gateway.keys['full']}"},
        timeout=30,
    )


def breakers(gateway: GatewayUnderTest) -> dict[str, dict[str, Any]]:
    rows = httpx.get(gateway.url + "/admin/breakers", timeout=10).json()["breakers"]
    return {row["key"]: row for row in rows}


LOOP = breaker(
    "loop-guard",
    "  target: {agent: '*'}\n  repeats: {count: 3, window: 1m}\n  openFor: 1s\n  maxOpenFor: 4s\n"
    "  halfOpen: {probes: 1, closeAfter: 1}\n",
)


def test_repeats_trip_the_agents_breaker_which_half_opens_and_closes(make_gateway: Any) -> None:
    gateway = make_gateway(extra=LOOP)
    assert [chat(gateway).status_code for _ in range(3)] == [200, 200, 200]
    fourth = chat(gateway)
    assert fourth.status_code == 429
    assert fourth.headers["x-fleetplane-breaker"] == "Breaker/loop-guard"
    assert fourth.headers["x-fleetplane-breaker-trigger"] == "repeats"
    assert fourth.headers["x-fleetplane-error-source"] == "gateway"
    error = fourth.json()["error"]
    assert error["code"] == "breaker_open"
    assert error["message"].startswith(
        "Circuit breaker Breaker/loop-guard is open for agent bot: the same request 4 times in 1min > 3."
    )
    # Open for the agent: a different request is refused too.
    assert chat(gateway, "something else").status_code == 429
    [state] = breakers(gateway).values()
    assert state["status"] == "open" and state["trips"] == 1
    time.sleep(1.2)  # openFor: 1s
    probe = chat(gateway, "a fresh question")
    assert probe.status_code == 200
    assert breakers(gateway)["Breaker/loop-guard/agent:bot"]["status"] == "closed"


def test_cost_velocity_trips_on_dollars_per_minute(make_gateway: Any) -> None:
    # `solo` costs $1/$2 per million tokens: ~25 tokens per request is ~$0.00003
    gateway = make_gateway(
        extra=breaker("spend", "  target: {agent: bot}\n  costVelocity: {usdPerMinute: 0.00005}\n")
    )
    assert chat(gateway, "first [[sim output_tokens=10]]").status_code == 200
    assert chat(gateway, "second [[sim output_tokens=10]]").status_code == 200
    refused = chat(gateway, "third [[sim output_tokens=10]]")
    assert refused.status_code == 429
    assert refused.headers["x-fleetplane-breaker-trigger"] == "cost-velocity"
    assert (
        "cost velocity $0.00/min > $0.00/min" in refused.json()["error"]["message"]
        or "cost velocity $" in refused.json()["error"]["message"]
    )


def test_context_size_and_growth(make_gateway: Any) -> None:
    gateway = make_gateway(
        extra=breaker(
            "context",
            "  target: {agent: '*'}\n  contextGrowth: {maxInputTokens: 200, maxGrowthPerTurn: 60}\n",
        )
    )
    big = chat(gateway, "word " * 400)
    assert big.status_code == 429
    assert big.headers["x-fleetplane-breaker-trigger"] == "context-size"
    assert "context size:" in big.json()["error"]["message"]
    httpx.post(gateway.url + "/admin/breakers/Breaker/context/agent:bot/reset", timeout=10).raise_for_status()
    # one conversation (same system prompt and first message) growing by more than 60 tokens a turn
    history = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]
    ok = httpx.post(
        gateway.v1 + "/chat/completions", json={"model": "solo", "messages": history},
        headers={"authorization": f"Bearer {gateway.keys['full']}"}, timeout=30,
    )  # fmt: skip
    assert ok.status_code == 200
    history += [{"role": "assistant", "content": "yes " * 40}, {"role": "user", "content": "more " * 40}]
    grown = httpx.post(
        gateway.v1 + "/chat/completions", json={"model": "solo", "messages": history},
        headers={"authorization": f"Bearer {gateway.keys['full']}"}, timeout=30,
    )  # fmt: skip
    assert grown.status_code == 429
    assert grown.headers["x-fleetplane-breaker-trigger"] == "context-growth"


def test_a_deployment_error_rate_breaker_moves_traffic_and_recovers(
    make_gateway: Any, sim: SimProcess
) -> None:
    gateway = make_gateway(
        extra=breaker(
            "upstream",
            "  target: {deployment: sim/sim-large}\n"
            "  errorRate: {threshold: 0.5, minRequests: 2, window: 1m}\n  openFor: 30s\n",
        ),
        chain_timeout="10s",
    )
    sim.add_fault("error", "sim-large", status=500, count=1)
    assert chat(gateway, model="chain").headers["x-fleetplane-deployment"] == "sim/sim-medium"
    httpx.delete(gateway.url + "/admin/gateway/cooldowns/sim/sim-large", timeout=10).raise_for_status()
    sim.add_fault("error", "sim-large", status=500, count=1)
    assert chat(gateway, model="chain").headers["x-fleetplane-deployment"] == "sim/sim-medium"
    state = breakers(gateway)["Breaker/upstream/deployment:sim/sim-large"]
    assert state["status"] == "open" and state["trigger"] == "error-rate"
    assert state["reason"] == "error rate 100% > 50% (2 of 2 in 1min)"
    # The trip rests the deployment for as long as the breaker is open.
    models = httpx.get(gateway.url + "/admin/gateway/config", timeout=10).json()["models"]
    cooling = {k: v for m in models for k, v in m["cooldowns"].items()}
    assert cooling["sim/sim-large"] > 25
    httpx.post(gateway.url + "/admin/breakers/Breaker/upstream/deployment:sim/sim-large/reset", timeout=10)
    assert breakers(gateway) == {}


def test_breaker_state_is_shared_between_replicas(make_gateway: Any, redis_url: str) -> None:
    first = make_gateway(redis_url=redis_url, extra=LOOP)
    second = make_gateway(redis_url=redis_url, extra=LOOP)
    for _ in range(3):
        assert chat(first).status_code == 200
    assert chat(second).status_code == 429  # the 4th repeat, counted across both replicas
    assert chat(first, "different").status_code == 429
    assert breakers(second)["Breaker/loop-guard/agent:bot"]["status"] == "open"
