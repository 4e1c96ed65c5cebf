"""What a scorer is: the `Sample` it reads, the `Score` it returns, and the registry of scorer types.

A suite names scorer types (`{type: rouge-l}`); `make_scorer` turns a name and its parameters into a
`Scorer`. Built-in types register in `fleetplane.evals.scorers`; judges register theirs in
`fleetplane.evals.judges` with the same `register_scorer` decorator. Every scorer is async (a judge calls
the gateway; a regex does not wait, and pays nothing for being a coroutine).

Cost of local scorers: a scorer that runs here reports no dollars of its own; `timed_score` measures its
wall and CPU time per item and prices the CPU time at `CPU_DOLLARS_PER_HOUR`, so the cheap tier's cost per
item sits next to a judge's (which reports the gateway's charge).
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

Tier = Literal["deterministic", "usage", "heuristic", "embedding", "judge"]
Unit = Literal["ratio", "raw"]

# An on-demand vCPU-hour (roughly a c7i.large's price per vCPU): what a CPU-second of local scoring costs.
CPU_DOLLARS_PER_HOUR = 0.045


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Sample:
    """One answer of a target to one case (one epoch), as every scorer sees it."""

    case_id: str
    input: Any
    output: str  # the answer as text (an agent's or skill's structured output is JSON text)
    expected: Any = None
    reference: Any = None  # default for overlap scorers and judges: `expected`
    metadata: Mapping[str, Any] = field(default_factory=dict)
    vars: Mapping[str, Any] = field(default_factory=dict)  # per-case scorer arguments, by scorer type
    structured: Any = None  # the output as data when the target returned data
    usage: Usage | None = None
    latency_ms: float | None = None  # of the target's call
    cost_usd: float | None = None  # of the target's call (the gateway's charge)
    model: str | None = None  # the model group or model that answered
    target: str = ""  # "model:fast", "agent:triage", ...
    finish_reason: str | None = None
    trace_id: str | None = None
    epoch: int = 0

    @property
    def reference_text(self) -> str:
        ref = self.reference if self.reference is not None else self.expected
        return "" if ref is None else ref if isinstance(ref, str) else str(ref)


@dataclass(frozen=True)
class Score:
    """A scorer's verdict on one sample.

    `value` is in [0, 1] for `unit="ratio"` (higher is better) or a raw number (dollars, milliseconds,
    tokens) for `unit="raw"`; `passed` is None when the scorer does not decide pass/fail. `cost_usd` and
    `latency_ms` are what scoring itself cost; `flags` mark the item for a judge or a human
    ("low-score", "order-disagreement", "refusal", ...); `details` is recorded with the result (a judge's
    model and family, a same-family override).
    """

    value: float
    passed: bool | None = None
    explanation: str = ""
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    flags: tuple[str, ...] = ()
    unit: Unit = "ratio"
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if math.isnan(self.value):
            raise ValueError("a score value may not be NaN")
        if self.unit == "ratio" and not 0.0 <= self.value <= 1.0:
            raise ValueError(f"a ratio score must be in [0, 1], got {self.value}")


@runtime_checkable
class Scorer(Protocol):
    """A scorer type's instance: `type` is its registered name, `tier` what it costs to run."""

    @property
    def type(self) -> str: ...

    @property
    def tier(self) -> Tier: ...

    async def score(self, sample: Sample) -> Score: ...


class ScorerError(ValueError):
    """A scorer type that does not exist, or parameters it does not accept. `param` names the key."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


ScorerFactory = Callable[[Mapping[str, Any]], Scorer]


@dataclass(frozen=True)
class ScorerType:
    name: str
    tier: Tier
    factory: ScorerFactory
    description: str


SCORERS: dict[str, ScorerType] = {}
# Modules that register scorer types when imported; a missing optional one (judges) is skipped.
_PROVIDERS = ("fleetplane.evals.scorers", "fleetplane.evals.judges")
_loaded = False


def register_scorer(name: str, tier: Tier, description: str = "") -> Callable[[ScorerFactory], ScorerFactory]:
    """Register `factory(params) -> Scorer` under `name`; a second registration of a name is an error."""

    def decorate(factory: ScorerFactory) -> ScorerFactory:
        if name in SCORERS and SCORERS[name].factory is not factory:
            raise ValueError(f"scorer type {name!r} is registered twice")
        SCORERS[name] = ScorerType(name, tier, factory, description or (factory.__doc__ or "").strip())
        return factory

    return decorate


def scorer_types() -> dict[str, ScorerType]:
    """Every registered scorer type, the built-in and optional providers imported first."""
    global _loaded
    if not _loaded:
        for module in _PROVIDERS:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
        _loaded = True
    return SCORERS


def make_scorer(name: str, params: Mapping[str, Any] | None = None) -> Scorer:
    """A scorer of type `name`; raises `ScorerError` for an unknown type or bad parameters."""
    types = scorer_types()
    if name not in types:
        raise ScorerError(f"unknown scorer type {name!r}; expected one of: {', '.join(sorted(types))}")
    return types[name].factory(dict(params or {}))


async def timed_score(scorer: Scorer, sample: Sample) -> Score:
    """Score and measure: wall time always, and for local scorers a dollar cost from the CPU time used."""
    wall, cpu = time.perf_counter(), time.thread_time()
    score = await scorer.score(sample)
    wall_ms = (time.perf_counter() - wall) * 1000.0
    cpu_s = time.thread_time() - cpu
    updates: dict[str, Any] = {}
    if not score.latency_ms:
        updates["latency_ms"] = wall_ms
    if not score.cost_usd and scorer.tier != "judge":
        updates["cost_usd"] = cpu_s * CPU_DOLLARS_PER_HOUR / 3600.0
    return replace(score, **updates) if updates else score
