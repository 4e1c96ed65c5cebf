"""L1 quotas through the gateway: admission on every scope at once, denials that name their scope,
fallback on a deployment's budget, streams and both APIs on one ledger, concurrency."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from harness import GatewayUnderTest

from fleetplane.telemetry.tokens import count_anthropic_messages, count_openai_chat

ASK = [{"role": "user", "content": "budget [[sim output_tokens=5]]"}]
INPUT = count_openai_chat({"messages": ASK})


def quota(name: str, target: str, limits: str, **extra: str) -> str:
    more = "".join(f"  {k}: {v}\n" for k, v in extra.items())
    return (
        "apiVersion: fleetplane.dev/v1alpha1\nkind: Quota\n"
        f"metadata: {{name: {name}}}\nspec:\n  target: {target}\n  limits: {limits}\n{more}---\n"
    )


def chat(
    gateway: GatewayUnderTest, model: str = "solo", *, max_tokens: int = 10, **extra: Any
) -> httpx.Response:
    return httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": model, "messages": ASK, "max_tokens": max_tokens, **extra},
        headers={"authorization": f"Bearer {gateway.keys['full']}"},
        timeout=30,
    )


def quotas(gateway: GatewayUnderTest) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    rows = httpx.get(gateway.url + "/admin/quotas", timeout=10).json()["quotas"]
    return {(r["rule"], r["subject"]): {lim["name"]: lim for lim in r["limits"]} for r in rows}


def test_a_team_budget_admits_until_the_next_request_would_not_fit(make_gateway: Any) -> None:
    per_request = INPUT + 10  # strict: the counted input plus the request's max_tokens
    limit = 4 * per_request + per_request // 2
    gateway = make_gateway(extra=quota("team-budget", "{team: support}", f"{{tpm: {limit}}}"))
    admitted = [chat(gateway) for _ in range(4)]
    assert [r.status_code for r in admitted] == [200] * 4
    # Settled to real usage (input + 5 output), the window now holds 4 * (INPUT + 5).
    used = 4 * (INPUT + 5)
    assert admitted[-1].headers["x-ratelimit-limit-tokens"] == str(limit)
    assert admitted[-1].headers["x-fleetplane-quota-scope"] == "Quota/team-budget (team=support)"
    fifth = chat(gateway)
    if used + per_request <= limit:
        assert fifth.status_code == 200
        used += INPUT + 5
        fifth = chat(gateway)
    assert fifth.status_code == 429
    assert fifth.headers["x-fleetplane-error-source"] == "gateway"
    assert fifth.headers["x-fleetplane-quota-scope"] == "Quota/team-budget (team=support)"
    assert fifth.headers["x-fleetplane-quota-limit"] == "tpm"
    assert int(fifth.headers["retry-after"]) >= 1
    assert fifth.headers["x-ratelimit-remaining-tokens"] == str(limit - used)
    error = fifth.json()["error"]
    assert error["code"] == "quota_exceeded" and error["type"] == "rate_limit_error"
    assert error["message"] == (
        f"Quota exceeded for Quota/team-budget (team=support): the tpm limit is {limit}; "
        f"{used} used and 0 reserved in its window, this request needs {per_request}. "
        f"Retry in {fifth.headers['retry-after']}s."
    )
    counters = quotas(gateway)[("Quota/team-budget", "team=support")]["tpm"]
    assert (counters["used"], counters["reserved"]) == (used, 0)
    denied = [r for r in gateway.usage(at_least=6) if r.status == 429]
    assert [(r.input_tokens, r.output_tokens, r.cost_usd) for r in denied] == [(0, 0, Decimal(0))]


def test_a_denial_by_the_agent_is_charged_to_no_other_scope(make_gateway: Any) -> None:
    gateway = make_gateway(
        extra=quota("agents", "{agent: '*'}", "{rpm: 1}") + quota("team", "{team: support}", "{rpm: 100}")
    )
    assert chat(gateway).status_code == 200
    denied = chat(gateway)
    assert denied.status_code == 429
    assert denied.headers["x-fleetplane-quota-scope"] == "Quota/agents (agent=bot)"
    counters = quotas(gateway)
    assert counters[("Quota/agents", "agent=bot")]["rpm"]["used"] == 1
    assert counters[("Quota/team", "team=support")]["rpm"]["used"] == 1  # not 2


def test_a_team_limit_stops_every_agent_of_the_team(make_gateway: Any) -> None:
    gateway = make_gateway(extra=quota("team", "{team: support}", "{rpm: 1}"))
    assert chat(gateway).status_code == 200
    # the `limited` key belongs to the same team but no agent
    other = httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": "solo", "messages": ASK},
        headers={"authorization": f"Bearer {gateway.keys['limited']}"},
        timeout=30,
    )
    assert other.status_code == 429


def test_a_spent_deployment_budget_falls_back_to_the_next_deployment(make_gateway: Any) -> None:
    gateway = make_gateway(extra=quota("large", "{team: support, deployment: sim/sim-large}", "{rpm: 1}"))
    first, second = chat(gateway, "chain"), chat(gateway, "chain")
    assert first.headers["x-fleetplane-deployment"] == "sim/sim-large"
    assert second.status_code == 200
    assert second.headers["x-fleetplane-deployment"] == "sim/sim-medium"
    assert second.headers["x-fleetplane-fallback"] == "true"
    # a model group whose only deployment is spent answers with the denial itself
    solo_gateway = make_gateway(extra=quota("small", "{deployment: sim/sim-small}", "{rpm: 1}"))
    chat(solo_gateway)
    denied = chat(solo_gateway)
    assert denied.status_code == 429
    assert denied.headers["x-fleetplane-quota-scope"] == "Quota/small (deployment=sim/sim-small)"


def test_streamed_and_plain_requests_charge_the_same(make_gateway: Any) -> None:
    gateway = make_gateway(extra=quota("team", "{team: support}", "{tpm: 100000, usdPerDay: 10}"))
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0)
    client.chat.completions.create(model="solo", messages=ASK, max_tokens=10)  # type: ignore[arg-type]
    after_plain = quotas(gateway)[("Quota/team", "team=support")]
    list(client.chat.completions.create(model="solo", messages=ASK, max_tokens=10, stream=True))  # type: ignore[arg-type]
    after_both = quotas(gateway)[("Quota/team", "team=support")]
    assert after_both["tpm"]["used"] == 2 * after_plain["tpm"]["used"] == 2 * (INPUT + 5)
    assert after_both["usd-per-day"]["used"] == pytest.approx(2 * after_plain["usd-per-day"]["used"])
    assert after_both["tpm"]["reserved"] == 0


def test_messages_and_chat_completions_charge_one_ledger(make_gateway: Any) -> None:
    gateway = make_gateway(extra=quota("team", "{team: support}", "{tpm: 100000, rpm: 100}"))
    chat(gateway)
    httpx.post(
        gateway.v1 + "/messages",
        json={"model": "solo", "max_tokens": 10, "messages": ASK},
        headers={"x-api-key": gateway.keys["full"]},
        timeout=30,
    ).raise_for_status()
    counters = quotas(gateway)[("Quota/team", "team=support")]
    assert counters["rpm"]["used"] == 2
    # the Anthropic request was translated to the OpenAI deployment; the upstream counted its input
    assert counters["tpm"]["used"] == (INPUT + 5) + (count_openai_chat({"messages": ASK}) + 5)
    assert count_anthropic_messages({"messages": ASK}) > 0


def test_two_hundred_concurrent_requests_never_pass_a_small_limit(make_gateway: Any) -> None:
    limit = 1000
    gateway = make_gateway(extra=quota("tight", "{team: support}", f"{{tpm: {limit}}}"))

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as client:

            async def one() -> int:
                response = await client.post(
                    gateway.v1 + "/chat/completions",
                    json={"model": "solo", "messages": ASK, "max_tokens": 10},
                    headers={"authorization": f"Bearer {gateway.keys['full']}"},
                )
                return response.status_code

            return await asyncio.gather(*(one() for _ in range(200)))

    statuses = asyncio.run(burst())
    assert set(statuses) <= {200, 429}
    records = [r for r in gateway.usage(at_least=200) if r.status == 200]
    admitted_tokens = sum(r.input_tokens + r.output_tokens for r in records)
    ratio = admitted_tokens / limit
    print(f"\nadmitted {len(records)} of 200; tokens {admitted_tokens} of {limit} ({ratio:.3f})")
    assert admitted_tokens <= limit
    assert len(records) == limit // (INPUT + 10)  # strict reservations fill the window exactly
    assert quotas(gateway)[("Quota/tight", "team=support")]["tpm"]["reserved"] == 0
