"""What callers tell the metrics (`CallRecord` for a finished model call, `Outcome` for a span helper's
operation) and the low-cardinality attribute sets recorded under them, built once per kind of call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.cost import TokenUsage


@dataclass(frozen=True)
class CallRecord:
    """A finished model call (chat, text completion, embeddings) as the metrics need it."""

    operation: str
    provider: str
    duration_s: float
    request_model: str | None = None
    response_model: str | None = None
    server_address: str | None = None
    server_port: int | None = None
    usage: TokenUsage | None = None
    error_type: str | None = None
    # Streams only: time to the first chunk, and the gaps between later chunks.
    time_to_first_chunk_s: float | None = None
    chunk_intervals_s: Sequence[float] = ()
    cost_usd: Decimal | float | None = None
    context_utilization: float | None = None
    finish_reasons: Sequence[str] = ()
    agent_name: str | None = None
    tenant: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """What a finished span-helper operation learnt; filled in while the span is open."""

    operation: str  # gen_ai.operation.name, or "mcp" for an MCP span
    attributes: Mapping[str, Any]  # the span's starting attributes (provider, models, names, ...)
    server_side: bool = False
    duration_s: float = 0.0
    error_type: str | None = None
    usage: TokenUsage | None = None
    response_model: str | None = None
    time_to_first_chunk_s: float | None = None
    chunk_intervals_s: list[float] = field(default_factory=list)
    cost_usd: Decimal | float | None = None
    context_utilization: float | None = None
    finish_reasons: list[str] = field(default_factory=list)
    tenant: dict[str, str] = field(default_factory=dict)


def known_attrs(**values: Any) -> dict[str, Any]:
    """Attributes without the unknown ones (an empty attribute is a separate, useless series)."""
    return {key: value for key, value in values.items() if value is not None and value != ""}


def tenant_attrs(tenant: Mapping[str, str]) -> dict[str, str]:
    return {key: tenant[key] for key in sc.TENANT_METRIC_ATTRIBUTES if tenant.get(key)}


MAX_BOUND = 1024  # cached attribute sets per kind before the cache starts over


@dataclass(frozen=True, slots=True)
class CallAttributes:
    """The attribute sets one kind of model call records under (see `GenAIMetrics._call_attributes`)."""

    base: dict[str, Any]
    with_error: dict[str, Any]
    input_tokens: dict[str, Any]
    output_tokens: dict[str, Any]
    modal: dict[str, Any]

    @classmethod
    def build(cls, call: CallRecord) -> CallAttributes:
        base = known_attrs(
            **{
                sc.GEN_AI_OPERATION_NAME: call.operation,
                sc.GEN_AI_PROVIDER_NAME: call.provider,
                sc.GEN_AI_REQUEST_MODEL: call.request_model,
                sc.GEN_AI_RESPONSE_MODEL: call.response_model,
                sc.SERVER_ADDRESS: call.server_address,
                sc.SERVER_PORT: call.server_port,
            }
        )
        return cls(
            base=base,
            with_error={**base, sc.ERROR_TYPE: call.error_type} if call.error_type else base,
            input_tokens={**base, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_INPUT},
            output_tokens={**base, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_OUTPUT},
            # Providers here report no per-modality split.
            modal={**base, sc.GEN_AI_TOKEN_MODALITY: "unknown"},
        )
