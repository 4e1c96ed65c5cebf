"""Every API surface charges one set of quota counters, the same as the usage ledger (LiteLLM #38176:
`/v1/messages` and `/v1/responses` traffic not counted; #37923: streams recorded as $0): chat completions
and messages, plain and streamed, to an OpenAI and to an Anthropic upstream, and embeddings — which are
also refused like any other request once a budget is spent. (tests/gateway/test_quota.py compares plain
with streamed chat, and messages with chat, pairwise.)"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
from harness import GatewayUnderTest

ASK = [{"role": "user", "content": "count me [[sim output_tokens=6]]"}]


def quota(limits: str) -> str:
    return (
        "apiVersion: fleetplane.dev/v1alpha1\nkind: Quota\nmetadata: {name: team}\n"
        f"spec:\n  target: {{team: support}}\n  limits: {limits}\n---\n"
    )


def counters(gateway: GatewayUnderTest) -> dict[str, dict[str, Any]]:
    [row] = httpx.get(gateway.url + "/admin/quotas", timeout=10).json()["quotas"]
    return {lim["name"]: lim for lim in row["limits"]}


def test_every_api_surface_charges_the_counters_the_ledger_records(make_gateway: Any) -> None:
    gateway = make_gateway(extra=quota("{tpm: 1000000, rpm: 1000, usdPerDay: 100}"))
    oai = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0)
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.keys["full"], max_retries=0)

    oai.chat.completions.create(model="solo", messages=ASK, max_tokens=20)  # type: ignore[arg-type]
    list(oai.chat.completions.create(model="solo", messages=ASK, max_tokens=20, stream=True))  # type: ignore[arg-type]
    for model in ("claude", "solo"):  # an Anthropic upstream, and translated to an OpenAI one
        claude.messages.create(model=model, max_tokens=20, messages=ASK)  # type: ignore[arg-type]
        with claude.messages.stream(model=model, max_tokens=20, messages=ASK) as stream:  # type: ignore[arg-type]
            stream.get_final_message()
    vectors = oai.embeddings.create(model="embed", input=["embed me", "and me too"])  # base64 on the wire
    assert len(vectors.data) == 2

    records = gateway.usage(at_least=7)
    assert len(records) == 7 and {r.status for r in records} == {200}
    assert sorted(r.api for r in records) == ["chat", "chat", "embeddings"] + ["messages"] * 4
    [embedded] = [r for r in records if r.api == "embeddings"]
    assert embedded.input_tokens == vectors.usage.prompt_tokens and embedded.output_tokens == 0
    assert embedded.cost_usd > 0
    limits = counters(gateway)
    assert limits["tpm"]["used"] == sum(r.input_tokens + r.output_tokens for r in records)
    assert limits["rpm"]["used"] == 7
    assert limits["usd-per-day"]["used"] == pytest.approx(
        float(sum((r.cost_usd for r in records), Decimal(0))), abs=1e-9
    )
    assert all(lim["reserved"] == 0 for lim in limits.values())


def test_a_spent_budget_refuses_embeddings_too(make_gateway: Any) -> None:
    gateway = make_gateway(extra=quota("{rpm: 2}"))
    oai = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0)
    oai.chat.completions.create(model="solo", messages=ASK, max_tokens=20)  # type: ignore[arg-type]
    oai.embeddings.create(model="embed", input="first")
    with pytest.raises(openai.RateLimitError) as refused:
        oai.embeddings.create(model="embed", input="second")
    assert refused.value.response.headers["x-fleetplane-quota-scope"] == "Quota/team (team=support)"
    assert refused.value.response.headers["x-fleetplane-error-source"] == "gateway"
    assert refused.value.code == "quota_exceeded"
    denied = [r for r in gateway.usage(at_least=3) if r.status == 429]
    assert [(r.api, r.input_tokens, r.cost_usd) for r in denied] == [("embeddings", 0, Decimal(0))]
    assert counters(gateway)["rpm"]["used"] == 2
