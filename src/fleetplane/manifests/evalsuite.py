"""`EvalSuite`: a set of cases run against a target (a model group, an agent, a skill version or a
pipeline), scored on named dimensions, each with its scorers, weight, pass threshold and deploy gate.

    apiVersion: fleetplane.dev/v1alpha1
    kind: EvalSuite
    metadata: {name: support-answers}
    spec:
      target: {model: fast}
      epochs: 3                       # stochastic targets: every case K times, averaged per case
      dimensions:
        - name: correctness
          weight: 2
          threshold: 0.8              # a case passes the dimension when its score is >= 0.8
          gate: {margin: 0.05}        # block a deploy on a drop worse than 5 points
          scorers:
            - {type: contains, value: refund}
            - {type: rouge-l}
        - name: cost
          goal: minimize
          scorers: [{type: cost}]
      cases:
        - {id: refund-1, input: "Can I get my money back?", expected: refund, fixture: billing}
      caseFiles:
        - {path: cases/more.jsonl}
        - {path: promptfooconfig.yaml, format: promptfoo}
      schedule: {every: 1d}

Scorer entries name a scorer type of the evals registry and carry its parameters as further keys; the
evals wing checks the names and parameters when it loads the suite (this floor cannot see the registry).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from fleetplane.manifests.document import Manifest, kind
from fleetplane.manifests.fields import Duration, FieldError, Name, Strict

CaseFormat = Literal["native", "promptfoo", "openai-evals", "agent-skills"]


class EvalCase(Strict):
    """One case: what the target is given and what a good answer is."""

    id: str = Field(min_length=1, max_length=255)  # the store keys results by it
    # A string (one user message), a list of chat messages, or a mapping (an agent's / skill's input).
    input: str | list[dict[str, Any]] | dict[str, Any]
    expected: Any = None  # the answer scorers compare with exactly (exact, JSON diff, numeric)
    reference: Any = None  # a reference text for overlap scorers and judges (default: expected)
    metadata: dict[str, Any] = Field(default_factory=dict)
    fixture: str | None = None  # cases sharing a fixture are resampled together (cluster bootstrap)
    # Per-case scorer arguments, keyed by scorer type (e.g. {regex: {pattern: ...}}), over the suite's.
    vars: dict[str, Any] = Field(default_factory=dict)


class CaseFile(Strict):
    path: str = Field(min_length=1)  # relative to the suite's file
    format: CaseFormat = "native"  # native: YAML list or JSONL of cases


class ScorerRef(Strict):
    """A scorer type by name; every other key is one of its parameters."""

    model_config = ConfigDict(
        extra="allow", alias_generator=to_camel, populate_by_name=True, frozen=True, str_strip_whitespace=True
    )

    type: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Gate(Strict):
    # A deploy is blocked when the upper end of the 95% CI of (candidate - baseline) is below -margin.
    margin: float = Field(default=0.0, ge=0)


class Dimension(Strict):
    name: Name
    scorers: list[ScorerRef] = Field(min_length=1)
    weight: float = Field(default=1.0, ge=0)  # in the suite's overall weighted score
    # A case passes when its dimension score is >= threshold (<= for goal: minimize); without one, when
    # every scorer that decides pass/fail passes.
    threshold: float | None = None
    goal: Literal["maximize", "minimize"] = "maximize"
    gate: Gate | None = None  # gated dimensions are the ones `eval gate` may block on


class Target(Strict):
    """Exactly one of model, agent, skill, pipeline."""

    model: str | None = None  # a model group, called through the gateway's chat API
    agent: str | None = None  # POST /agents/{name}/invoke on the server
    skill: str | None = None  # name@version, run by the target callable the server supplies
    pipeline: str | None = None
    system: str | None = None  # a system message put before string inputs (model targets)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        given = [k for k in ("model", "agent", "skill", "pipeline") if getattr(self, k)]
        if len(given) != 1:
            raise FieldError(
                f"{len(given)} targets given" if given else "no target given",
                expected="exactly one of model, agent, skill, pipeline",
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("model", "agent", "skill", "pipeline") if getattr(self, k))

    @property
    def name(self) -> str:
        return str(getattr(self, self.kind))


class EvalSchedule(Strict):
    every: Duration = Field(gt=0)  # run the suite this often (a time series for `eval history`)


class EvalSuiteSpec(Strict):
    target: Target
    dimensions: list[Dimension] = Field(min_length=1)
    cases: list[EvalCase] = Field(default_factory=list)
    case_files: list[CaseFile] = Field(default_factory=list)
    epochs: int = Field(default=1, ge=1, le=100)
    concurrency: int = Field(default=4, ge=1, le=256)
    judge: str | None = None  # the default judge model group for judge scorers
    # A judge from the target's own model family is refused unless this is set; the override is recorded.
    allow_same_family_judge: bool = False
    schedule: EvalSchedule | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EvalSuiteSpec:
        if not self.cases and not self.case_files:
            raise FieldError("a suite needs cases", expected="'cases' or 'caseFiles'")
        seen: dict[str, int] = {}
        for i, case in enumerate(self.cases):
            if case.id in seen:
                raise FieldError(
                    f"case id {case.id!r} is used twice (first at cases[{seen[case.id]}])",
                    at=("cases", i, "id"),
                )
            seen[case.id] = i
        names: dict[str, int] = {}
        for i, dim in enumerate(self.dimensions):
            if dim.name in names:
                raise FieldError(f"dimension {dim.name!r} is defined twice", at=("dimensions", i, "name"))
            names[dim.name] = i
        return self


@kind
class EvalSuite(Manifest):
    KIND = "EvalSuite"
    kind: Literal["EvalSuite"]
    spec: EvalSuiteSpec
