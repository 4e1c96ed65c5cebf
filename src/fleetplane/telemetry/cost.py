"""What a model call cost, in US dollars: a price the manifest declares, else the `genai-prices` data.

`input_tokens` counts every input token, cached ones included (the GenAI conventions' meaning);
cache reads and writes are priced at their own rates and the rest at the input rate.

The catalogue is consulted only for an identified provider: a model name alone says nothing about who
serves it (a self-hosted deployment may well be called `gpt-4o`), so without a provider id a call with no
declared price costs 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0  # already inside output_tokens; kept for reporting

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass(frozen=True)
class Rates:
    """US dollars per million tokens. Cache rates default to the input rate."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    @classmethod
    def of(
        cls, input: float, output: float, cache_read: float | None = None, cache_write: float | None = None
    ) -> Rates:
        def dec(v: float | None) -> Decimal | None:
            return None if v is None else Decimal(str(v))

        return cls(Decimal(str(input)), Decimal(str(output)), dec(cache_read), dec(cache_write))

    def cost(self, usage: TokenUsage) -> Decimal:
        cached = usage.cache_read_tokens + usage.cache_write_tokens
        plain_input = max(0, usage.input_tokens - cached)
        read_rate = self.input if self.cache_read is None else self.cache_read
        write_rate = self.input if self.cache_write is None else self.cache_write
        total = (
            plain_input * self.input
            + usage.cache_read_tokens * read_rate
            + usage.cache_write_tokens * write_rate
            + usage.output_tokens * self.output
        )
        return total / MILLION


def _catalogue_price(provider_id: str | None, model: str) -> Any:
    """The genai-prices entry for a model of an identified provider, or None."""
    if not provider_id:
        # genai-prices would match the name across every provider; an unidentified one is not priced.
        return None
    return _provider_price(provider_id, model)


@lru_cache(maxsize=1024)
def _provider_price(provider_id: str, model: str) -> Any:
    """Looked up once per (provider, model)."""
    from genai_prices import Usage, calc_price

    try:
        return calc_price(
            Usage(input_tokens=0, output_tokens=0), model_ref=model, provider_id=provider_id
        ).model_price
    except (LookupError, ValueError):
        return None


def catalogue_knows(provider_id: str | None, model: str) -> bool:
    return _catalogue_price(provider_id, model) is not None


def cost_usd(
    usage: TokenUsage, *, model: str, rates: Rates | None = None, provider_id: str | None = None
) -> Decimal:
    """Declared rates win; otherwise the catalogue; a model neither knows costs 0 (and is reported so)."""
    if rates is not None:
        return rates.cost(usage)
    price = _catalogue_price(provider_id, model)
    if price is None:
        return Decimal(0)
    from genai_prices import Usage

    result = price.calc_price(
        Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
    )
    return Decimal(result["total_price"])
