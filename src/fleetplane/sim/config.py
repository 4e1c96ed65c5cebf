"""The simulator's configuration: which models it serves and how each one behaves.

Loaded from YAML (or built from a dict) and validated with pydantic once at start-up; nothing here runs on
the request path. Errors name the file, the line, the field and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Strict(BaseModel):
    # A typo in a config file must fail loudly instead of silently falling back to a default.
    model_config = ConfigDict(extra="forbid")


class OutputTokens(_Strict):
    """Length of a reply when the request does not cap it: a normal distribution clamped to [min, max]."""

    mean: float = Field(default=200, ge=0)
    stddev: float = Field(default=80, ge=0)
    min: int = Field(default=1, ge=0)
    max: int = Field(default=2048, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> OutputTokens:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class TimeToFirstToken(_Strict):
    """Lognormal time to first token, given by its median and 95th percentile in milliseconds."""

    median: float = Field(default=300, ge=0)
    p95: float = Field(default=900, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> TimeToFirstToken:
        if self.p95 < self.median:
            raise ValueError(f"p95 ({self.p95}) must be at least the median ({self.median})")
        return self

    @property
    def sigma(self) -> float:
        if self.median <= 0 or self.p95 <= self.median:
            return 0.0
        # 1.6449 is the standard normal's 95th percentile: p95 = median * exp(1.6449 * sigma).
        return math.log(self.p95 / self.median) / 1.6448536269514722


class TokensPerSecond(_Strict):
    """Decode speed: normal around `mean` with `jitter` as its standard deviation; a mean of 0 is instant."""

    mean: float = Field(default=60, ge=0)
    jitter: float = Field(default=10, ge=0)


class Limits(_Strict):
    """Per-model rate limits, as token buckets refilled continuously over a minute (unset = unlimited)."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    input_tpm: int | None = Field(default=None, ge=1)
    output_tpm: int | None = Field(default=None, ge=1)


class FaultRates(_Strict):
    """Background faults, each a probability per request drawn from the seeded generator."""

    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=500, ge=400, le=599)
    overloaded_rate: float = Field(default=0.0, ge=0, le=1)
    hang_rate: float = Field(default=0.0, ge=0, le=1)
    truncate_rate: float = Field(default=0.0, ge=0, le=1)
    after_chunks: int = Field(default=3, ge=0)


class ModelConfig(_Strict):
    kind: Literal["chat", "embedding"] = "chat"
    owned_by: str = "fleetplane-sim"
    display_name: str | None = None
    context_window: int = Field(default=128_000, ge=1)
    dimensions: int = Field(default=1536, ge=1, le=16_384)
    output_tokens: OutputTokens = Field(default_factory=OutputTokens)
    ttft_ms: TimeToFirstToken = Field(default_factory=TimeToFirstToken)
    tps: TokensPerSecond = Field(default_factory=TokensPerSecond)
    chunk_tokens: int = Field(default=1, ge=1)
    instant: bool = False
    limits: Limits = Field(default_factory=Limits)
    faults: FaultRates = Field(default_factory=FaultRates)


class Outage(_Strict):
    """A window, relative to the simulator's start, during which a model (or "*") answers only errors."""

    model: str = "*"
    start_s: float = Field(default=0, ge=0)
    duration_s: float = Field(gt=0)
    status: int = Field(default=503, ge=400, le=599)
    retry_after: int | None = Field(default=None, ge=0)


class SimConfig(_Strict):
    seed: int = 0
    require_key: str | None = None
    instant: bool = False
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    outages: list[Outage] = Field(default_factory=list)

    @model_validator(mode="after")
    def _outages_name_models(self) -> SimConfig:
        for outage in self.outages:
            if outage.model != "*" and outage.model not in self.models:
                raise ValueError(f"outage names model {outage.model!r}, which is not under `models`")
        return self

    def is_instant(self, model: ModelConfig) -> bool:
        return self.instant or model.instant


class ConfigError(Exception):
    """A config that cannot be used; the message is meant for a person, without a traceback."""


_DEFAULT_LIMITS = Limits(rpm=60_000, tpm=50_000_000)


def default_config() -> SimConfig:
    """The models served when no config file is given: three chat sizes, a Claude-like one and embeddings."""
    return SimConfig(
        models={
            "sim-large": ModelConfig(
                output_tokens=OutputTokens(mean=350, stddev=150, min=20, max=4096),
                ttft_ms=TimeToFirstToken(median=600, p95=1800),
                tps=TokensPerSecond(mean=40, jitter=8),
                limits=_DEFAULT_LIMITS,
            ),
            "sim-medium": ModelConfig(
                output_tokens=OutputTokens(mean=200, stddev=90, min=10, max=4096),
                ttft_ms=TimeToFirstToken(median=350, p95=1000),
                tps=TokensPerSecond(mean=80, jitter=12),
                limits=_DEFAULT_LIMITS,
            ),
            "sim-small": ModelConfig(
                output_tokens=OutputTokens(mean=120, stddev=60, min=5, max=4096),
                ttft_ms=TimeToFirstToken(median=150, p95=450),
                tps=TokensPerSecond(mean=150, jitter=20),
                limits=_DEFAULT_LIMITS,
            ),
            "sim-claude": ModelConfig(
                owned_by="anthropic",
                display_name="Sim Claude",
                context_window=200_000,
                output_tokens=OutputTokens(mean=300, stddev=120, min=10, max=8192),
                ttft_ms=TimeToFirstToken(median=500, p95=1500),
                tps=TokensPerSecond(mean=60, jitter=10),
                limits=_DEFAULT_LIMITS,
            ),
            "sim-embed": ModelConfig(
                kind="embedding",
                context_window=8192,
                dimensions=1536,
                ttft_ms=TimeToFirstToken(median=40, p95=120),
                tps=TokensPerSecond(mean=0, jitter=0),
                limits=_DEFAULT_LIMITS,
            ),
        }
    )


def model_for_name(name: str) -> ModelConfig:
    """The model a bare `--model NAME` adds: an embeddings model when the name says so, else a chat model."""
    if "embed" in name.lower():
        return ModelConfig(
            kind="embedding", context_window=8192, ttft_ms=TimeToFirstToken(median=40, p95=120)
        )
    return ModelConfig()


def from_mapping(data: Mapping[str, Any], *, source: str = "<config>", text: str | None = None) -> SimConfig:
    try:
        return SimConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, text)) from None


def load_config(path: str | Path) -> SimConfig:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(file)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file}:1: expected a mapping at the top level (seed, models, outages, ...)")
    return from_mapping(data, source=str(file), text=text)


def _describe(exc: ValidationError, source: str, text: str | None) -> str:
    root = yaml.compose(text) if text else None
    lines = []
    for error in exc.errors():
        loc = [part for part in error["loc"] if part not in ("function-after",)]
        field = ".".join(str(part) for part in loc) or "(top level)"
        line = _line_of(root, loc)
        where = f"{source}:{line}" if line else source
        message = str(error["msg"]).removeprefix("Value error, ")
        detail = f"{where}: {field}: {message}"
        if error["type"] not in ("missing", "value_error") and "input" in error:
            detail += f" (got {error['input']!r})"
        lines.append(detail)
    return "\n".join(lines)


def _line_of(node: Any, loc: list[Any]) -> int | None:
    """The 1-based line of the deepest YAML node the error location reaches."""
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((value for key, value in node.value if key.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line
