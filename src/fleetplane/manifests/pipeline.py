"""`Pipeline`: skills composed in stages — trigger → context → route → execute → validate → sink.

The kind checks shape and the structure a reader can check without evaluating anything: step ids are
unique, `needs` name steps that exist and make no cycle, a routed step has a router with choices, a
validation names a step that exists. Expressions are strings here; `fleetplane.pipelines.plan` compiles
them (and says where a bad one is). The same document can be written as Markdown (`*.pipeline.md`,
`fleetplane.manifests.pipeline_md`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from fleetplane.manifests.document import Manifest, kind
from fleetplane.manifests.fields import Duration, FieldError, Name, SecretRef, Strict

SKILL_REF = re.compile(r"^(?P<name>[a-z0-9]([-a-z0-9]{0,62}[a-z0-9])?)(@(?P<constraint>\S+))?$")
ROUTED = "route"  # `skill: route` runs the skill the router chose
STEP_ID = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")
_SKILL_EXPECTED = "a skill as name@constraint (e.g. lookup-order@^1.2), or 'route' for the routed skill"


def _check_skill(value: str, at: tuple[str | int, ...]) -> None:
    if value != ROUTED and not SKILL_REF.match(value):
        raise FieldError(at=at, expected=_SKILL_EXPECTED)


class Dedupe(Strict):
    """Where a webhook's dedupe key comes from: a request header, or an expression over the body."""

    header: str | None = None
    expr: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Dedupe:
        if (self.header is None) == (self.expr is None):
            raise FieldError(expected="exactly one of 'header' or 'expr'")
        return self


class Webhook(Strict):
    dedupe: Dedupe | None = None
    token: SecretRef | None = None  # when set, callers send it as a bearer token


class Schedule(Strict):
    every: Duration | None = None
    cron: str | None = None  # five fields: minute hour day-of-month month day-of-week
    timezone: str = "UTC"
    input: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise FieldError(expected="exactly one of 'every' (e.g. 5m) or 'cron' (five fields)")
        if self.every is not None and self.every < 1:
            raise FieldError(at=("every",), expected="a period of at least 1s")
        return self


class Trigger(Strict):
    webhook: Webhook | None = None
    schedule: Schedule | None = None
    manual: bool = True
    input: dict[str, Any] | None = None  # JSON schema of a run's input


class Retrieval(Strict):
    """RAG: a retrieval skill asked a query; its answer is `context.<name>`."""

    name: Name
    skill: str
    query: Any
    top_k: int = Field(default=5, ge=1, le=100)


class Context(Strict):
    values: dict[str, Any] = Field(default_factory=dict)  # name -> template
    retrieve: list[Retrieval] = Field(default_factory=list)


class RouteRule(Strict):
    when: str
    choose: str
    why: str | None = None  # the rationale recorded when this rule decides


class LlmChoice(Strict):
    model: str
    prompt: str  # a template; the choices and their descriptions are appended


class Route(Strict):
    choices: dict[str, str]  # choice -> skill name@constraint
    rules: list[RouteRule] = Field(default_factory=list)
    llm: LlmChoice | None = None
    default: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Route:
        if not self.choices:
            raise FieldError(at=("choices",), expected="at least one choice: name -> skill")
        for name, skill in self.choices.items():
            _check_skill(skill, ("choices", name))
            if skill == ROUTED:
                raise FieldError(at=("choices", name), expected=_SKILL_EXPECTED.split(", or")[0])
        for i, rule in enumerate(self.rules):
            if rule.choose not in self.choices:
                raise FieldError(at=("rules", i, "choose"), expected="one of: " + ", ".join(self.choices))
        if self.default is not None and self.default not in self.choices:
            raise FieldError(at=("default",), expected="one of: " + ", ".join(self.choices))
        if not self.rules and self.llm is None and self.default is None:
            raise FieldError("a router must decide somehow", expected="rules, llm or a default")
        return self


class Approval(Strict):
    required: bool = False
    when: str | None = None  # an expression: approval only when it is true
    timeout: Duration | None = None
    on_timeout: Literal["reject", "approve"] = "reject"


class Step(Strict):
    id: str
    skill: str
    input: Any = None  # a template: strings with {{ }} are evaluated
    needs: list[str] = Field(default_factory=list)
    when: str | None = None
    foreach: str | None = None  # an expression giving a list; `item` and `index` in the step's templates
    parallel: int = Field(default=1, ge=1, le=64)
    approval: Approval | None = None
    timeout: Duration | None = None  # default: the skill's contract


class Llm(Strict):
    model: str
    prompt: str  # a template; the model answers {"pass": bool, "reason": str}


class Validation(Strict):
    """A guardrail: blocking checks on a step's input (`at: before`) or output, or on the run's output."""

    name: Name
    step: str | None = None
    at: Literal["before", "after"] = "after"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    assert_: str | None = Field(default=None, alias="assert")
    deny: list[str] = Field(default_factory=list)  # case-insensitive substrings
    regex: list[str] = Field(default_factory=list)
    llm: Llm | None = None
    on_fail: Literal["block", "retry", "human"] = "block"
    retries: int = Field(default=2, ge=1, le=10)  # how often `retry` runs the step again

    @model_validator(mode="after")
    def _checks(self) -> Validation:
        if not (self.schema_ or self.assert_ or self.deny or self.regex or self.llm):
            raise FieldError(
                "a validation with nothing to check", expected="schema, assert, deny, regex or llm"
            )
        for i, pattern in enumerate(self.regex):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise FieldError(f"not a regular expression: {exc}", at=("regex", i)) from None
        if self.step is None and self.at == "before":
            raise FieldError("a run-level validation checks the output", at=("at",), expected="after")
        return self


class HttpSink(Strict):
    url: str
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None  # a template; default: the run's output


class FileSink(Strict):
    path: str  # a template
    body: Any = None


class TableSink(Strict):
    name: Name
    row: Any = None


class Sink(Strict):
    name: Name
    when: str | None = None
    http: HttpSink | None = None
    file: FileSink | None = None
    table: TableSink | None = None

    @model_validator(mode="after")
    def _one(self) -> Sink:
        if sum(x is not None for x in (self.http, self.file, self.table)) != 1:
            raise FieldError(expected="exactly one of 'http', 'file' or 'table'")
        return self


class McpServer(Strict):
    name: Name
    url: str
    pins: dict[str, str] = Field(default_factory=dict)  # tool -> sha256 of its definition


class Policy(Strict):
    require_signed: bool = False
    tools: list[str] | None = None  # the allow-list; None allows what each skill declares


class Journal(Strict):
    max_output_bytes: int = Field(default=1_048_576, ge=1024)
    redact: bool = True  # personal data out of journaled outputs (secrets are always scrubbed)


class PipelineSpec(Strict):
    description: str | None = None
    policy: Policy = Field(default_factory=Policy)
    journal: Journal = Field(default_factory=Journal)
    trigger: Trigger = Field(default_factory=Trigger)
    context: Context = Field(default_factory=Context)
    route: Route | None = None
    execute: list[Step] = Field(min_length=1)
    validate_: list[Validation] = Field(default_factory=list, alias="validate")
    sink: list[Sink] = Field(default_factory=list)
    mcp: list[McpServer] = Field(default_factory=list)
    output: Any = None  # a template; default: the last step's output

    @model_validator(mode="after")
    def _structure(self) -> PipelineSpec:
        ids: dict[str, int] = {}
        for i, step in enumerate(self.execute):
            if not STEP_ID.match(step.id):
                raise FieldError(
                    at=("execute", i, "id"), expected="a step id of lowercase letters, digits, '_' or '-'"
                )
            if step.id in ids:
                raise FieldError(f"step '{step.id}' is defined twice", at=("execute", i, "id"))
            ids[step.id] = i
            _check_skill(step.skill, ("execute", i, "skill"))
            if step.skill == ROUTED and self.route is None:
                raise FieldError("no route stage to choose the skill", at=("execute", i, "skill"))
            if step.approval and step.approval.required == (step.approval.when is not None):
                raise FieldError(
                    at=("execute", i, "approval"), expected="exactly one of required: true or when"
                )
        for i, step in enumerate(self.execute):
            for j, need in enumerate(step.needs):
                if need not in ids:
                    raise FieldError(f"no step '{need}'", at=("execute", i, "needs", j), expected=_ids(ids))
        _acyclic(self.execute, ids)
        for i, retrieval in enumerate(self.context.retrieve):
            _check_skill(retrieval.skill, ("context", "retrieve", i, "skill"))
        for i, check in enumerate(self.validate_):
            if check.step is not None and check.step not in ids:
                raise FieldError(f"no step '{check.step}'", at=("validate", i, "step"), expected=_ids(ids))
        names = [s.name for s in self.sink]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise FieldError(f"sink '{name}' is defined twice", at=("sink", i, "name"))
        return self


def _ids(ids: dict[str, int]) -> str:
    return "one of: " + ", ".join(ids)


def _acyclic(steps: list[Step], ids: dict[str, int]) -> None:
    """Depth-first search; a step met again while it is on the path closes a cycle."""
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(step_id: str, path: list[str]) -> None:
        state[step_id] = 1
        index = ids[step_id]
        for j, need in enumerate(steps[index].needs):
            if state.get(need) == 1:
                cycle = [*path[path.index(need) :], step_id, need] if need in path else [step_id, need]
                raise FieldError("a cycle: " + " -> ".join(cycle), at=("execute", index, "needs", j))
            if need not in state:
                visit(need, [*path, step_id])
        state[step_id] = 2

    for step in steps:
        if step.id not in state:
            visit(step.id, [])


@kind
class Pipeline(Manifest):
    KIND = "Pipeline"
    kind: Literal["Pipeline"]
    spec: PipelineSpec
