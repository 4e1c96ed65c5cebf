"""Pricing: declared rates win; the genai-prices catalogue prices only a provider it can identify."""

from __future__ import annotations

from decimal import Decimal

from fleetplane.telemetry.cost import Rates, TokenUsage, catalogue_knows, cost_usd

MILLION_EACH = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)


def test_a_model_name_without_a_provider_is_not_priced_from_the_catalogue() -> None:
    # A self-hosted deployment named like an OpenAI model must not be billed at OpenAI's rate.
    assert cost_usd(MILLION_EACH, model="gpt-4o") == Decimal(0)
    assert cost_usd(MILLION_EACH, model="gpt-4o", provider_id="") == Decimal(0)
    assert not catalogue_knows(None, "gpt-4o")


def test_an_identified_provider_is_priced_from_the_catalogue() -> None:
    assert catalogue_knows("openai", "gpt-4o")
    assert cost_usd(MILLION_EACH, model="gpt-4o", provider_id="openai") > Decimal(0)


def test_a_model_the_provider_does_not_list_costs_nothing() -> None:
    assert cost_usd(MILLION_EACH, model="my-finetune-7b", provider_id="openai") == Decimal(0)


def test_declared_rates_win_without_a_provider() -> None:
    rates = Rates.of(input=1.0, output=2.0)
    assert cost_usd(MILLION_EACH, model="gpt-4o", rates=rates) == Decimal(3)


def test_cached_tokens_are_priced_at_their_own_rate() -> None:
    rates = Rates.of(input=2.0, output=8.0, cache_read=0.5)
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=0, cache_read_tokens=400_000)
    assert cost_usd(usage, model="x", rates=rates) == Decimal("1.2") + Decimal("0.2")
