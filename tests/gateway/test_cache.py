"""The exact-match response cache, in-process and on Redis, as the first answer or the last resort."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from harness import GatewayUnderTest

from fleetplane.sim.process import SimProcess

ASK = [{"role": "user", "content": "cache me [[sim output_tokens=6]]"}]


@pytest.fixture(params=["memory", "redis"])
def cached_gateway(request: pytest.FixtureRequest, make_gateway: Any) -> GatewayUnderTest:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return make_gateway(redis_url=redis_url)  # type: ignore[no-any-return]


def post(gateway: GatewayUnderTest, model: str, *, key: str = "full", headers: dict[str, str] | None = None,
         **extra: Any) -> httpx.Response:  # fmt: skip
    return httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": model, "messages": ASK, **extra},
        headers={"authorization": f"Bearer {gateway.keys[key]}", **(headers or {})},
        timeout=30,
    )


def requests_to(sim: SimProcess, model: str) -> int:
    stats = sim.stats()["models"].get(model, {})
    return sum(stats.get("requests", {}).values())


def test_first_mode_answers_a_repeat_from_the_cache_and_charges_nothing(
    cached_gateway: GatewayUnderTest, sim: SimProcess
) -> None:
    first = post(cached_gateway, "cached")
    second = post(cached_gateway, "cached")
    assert first.headers["x-fleetplane-cache"] == "miss"
    assert second.headers["x-fleetplane-cache"] == "hit"
    assert second.content == first.content
    assert requests_to(sim, "sim-small") == 1
    miss, hit = cached_gateway.usage(at_least=2)
    assert miss.output_tokens == 6 and miss.cost_usd > 0
    assert (hit.cache_hit, hit.input_tokens, hit.output_tokens, hit.cost_usd, hit.usage_source) == (
        True, 0, 0, Decimal(0), "cache",
    )  # fmt: skip


def test_a_different_request_or_tenant_misses(cached_gateway: GatewayUnderTest, sim: SimProcess) -> None:
    post(cached_gateway, "cached")
    assert post(cached_gateway, "cached", temperature=0.5).headers["x-fleetplane-cache"] == "miss"
    # the same request from another team's key: no answer crosses tenants
    assert post(cached_gateway, "cached", key="limited").status_code == 403  # limited may use `solo` only
    assert requests_to(sim, "sim-small") == 2


@pytest.mark.parametrize(
    ("headers", "status", "upstream_calls"),
    [
        ({"x-fleetplane-cache": "no-cache"}, "bypass", 2),
        ({"cache-control": "no-cache"}, "bypass", 2),
        ({"x-fleetplane-cache": "off"}, "bypass", 2),
    ],
)
def test_opting_out(
    cached_gateway: GatewayUnderTest,
    sim: SimProcess,
    headers: dict[str, str],
    status: str,
    upstream_calls: int,
) -> None:
    post(cached_gateway, "cached")
    response = post(cached_gateway, "cached", headers=headers)
    assert response.headers["x-fleetplane-cache"] == status
    assert requests_to(sim, "sim-small") == upstream_calls


def test_no_store_keeps_an_answer_out_of_the_cache(cached_gateway: GatewayUnderTest, sim: SimProcess) -> None:
    post(cached_gateway, "cached", headers={"x-fleetplane-cache": "no-store"})
    assert post(cached_gateway, "cached").headers["x-fleetplane-cache"] == "miss"
    assert requests_to(sim, "sim-small") == 2


def test_streams_are_cached_and_replayed(cached_gateway: GatewayUnderTest, sim: SimProcess) -> None:
    first = post(cached_gateway, "cached", stream=True)
    second = post(cached_gateway, "cached", stream=True)
    assert second.headers["x-fleetplane-cache"] == "hit"
    assert second.headers["content-type"].startswith("text/event-stream")
    assert second.content == first.content
    assert requests_to(sim, "sim-small") == 1


def test_last_resort_mode_answers_only_when_every_deployment_fails(
    cached_gateway: GatewayUnderTest, sim: SimProcess
) -> None:
    fresh = post(cached_gateway, "rescue")
    again = post(cached_gateway, "rescue")
    assert (fresh.headers["x-fleetplane-cache"], again.headers["x-fleetplane-cache"]) == ("miss", "miss")
    assert requests_to(sim, "sim-medium") == 2
    sim.add_fault("error", "sim-medium", status=503)
    rescued = post(cached_gateway, "rescue")
    assert rescued.status_code == 200
    assert rescued.headers["x-fleetplane-cache"] == "hit"
    assert rescued.json()["choices"][0]["message"] == again.json()["choices"][0]["message"]
    # an unseen request has nothing to fall back on
    unseen = httpx.post(
        cached_gateway.v1 + "/chat/completions",
        json={"model": "rescue", "messages": [{"role": "user", "content": "never asked"}]},
        headers={"authorization": f"Bearer {cached_gateway.keys['full']}"},
        timeout=30,
    )
    assert unseen.status_code == 503
