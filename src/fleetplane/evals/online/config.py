"""The online evals file: which traffic is scored and how (`fleetplane up` reads `FLEETPLANE_ONLINE_EVALS`).

interval: 1s          # how often the span store is polled
lag: 2m               # spans are looked for this far behind the newest seen (they arrive late)
flagBelow: 0.5        # a cheap score under this flags the item for the judge
auditRate: 0.01       # a random slice of traffic reviewed by humans whatever its scores
cheap:                # scorer types of the evals registry, each on a dimension, on 100% of traffic
  - {type: non-empty, dimension: quality}
judge:                # one judge scorer type with its parameters (judge or judges panel)
  {type: llm-rubric, judges: [claude], rubric: "Answers the question correctly and politely."}
rules:                # the first matching rule decides; unmatched traffic is not scored
  - {name: support, rate: 0.05, agent: bot, team: support, model: chat-large, promptVersion: v7}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from fleetplane.evals.online.sampling import SamplingRule
from fleetplane.manifests.fields import Duration, Strict

ENV = "FLEETPLANE_ONLINE_EVALS"


class ConfigError(ValueError):
    """The online evals file is missing or wrong; the message names the file and the field."""


class ScorerSpec(Strict):
    model_config = ConfigDict(
        extra="allow", alias_generator=to_camel, populate_by_name=True, frozen=True, str_strip_whitespace=True
    )
    type: str = Field(min_length=1)
    dimension: str = Field(default="quality", min_length=1)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RuleSpec(Strict):
    name: str = Field(min_length=1)
    rate: float = Field(ge=0, le=1)
    agent: str | None = None
    model: str | None = None
    team: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None

    def rule(self) -> SamplingRule:
        return SamplingRule(**self.model_dump())


class OnlineConfig(Strict):
    interval: Duration = 1.0
    lag: Duration = 120.0
    flag_below: float = Field(default=0.5, ge=0, le=1)
    audit_rate: float = Field(default=0.0, ge=0, le=1)
    batch: int = Field(default=500, ge=1)
    judge_concurrency: int = Field(default=8, ge=1, le=256)
    cheap: list[ScorerSpec] = Field(default_factory=list)
    judge: ScorerSpec | None = None
    rules: list[RuleSpec] = Field(min_length=1)

    def sampling_rules(self) -> list[SamplingRule]:
        return [r.rule() for r in self.rules]


def load_config(path: str | Path) -> OnlineConfig:
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the online evals file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        # One line, at the place the parser gave up (its own message spans several, with the source quoted).
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}{at}: not YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping with 'rules', got {type(data).__name__}")
    try:
        return OnlineConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise ConfigError(f"{file}: {where}: {first['msg']}") from None
