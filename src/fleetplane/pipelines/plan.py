"""Compile a `Pipeline` into a frozen `Plan`: every expression checked, the steps in dependency order,
every skill the run must lock, and a digest (sha256 of the plan's canonical JSON).

A run stores the digest and the plan's JSON when it starts and a resume reads exactly that plan, whatever
was applied since. The checks here are the ones the kind cannot do without the expression language: an
expression that does not parse or uses a refused construct, a name that does not exist where it is used,
a step read (`steps.x`) without being needed. Each error is a `ManifestError` at the file:line of the
field, like the loader's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from fleetplane.manifests.errors import ManifestError, ManifestErrors, render_path
from fleetplane.manifests.expression_templates import compile_condition, compile_template
from fleetplane.manifests.expressions import ExprError, Expression
from fleetplane.manifests.pipeline import ROUTED, Pipeline, PipelineSpec, Step, Validation

Loc = tuple[str | int, ...]
# Where a field is written: (file, line, column). Documents read back from the store have no lines.
Locator = Callable[[Loc], tuple[str, int, int]]

_RUN = frozenset({"input", "run"})
_CONTEXT = _RUN | {"context"}
_STEPS = _CONTEXT | {"route", "steps"}
_ITEM = frozenset({"item", "index"})
_CHECK = _STEPS | _ITEM | {"args", "output"}
_SINK = _STEPS | {"output"}


@dataclass(frozen=True)
class Plan:
    pipeline: str
    spec: PipelineSpec
    order: tuple[str, ...]  # step ids, each after everything it needs
    skills: tuple[str, ...]  # every skill reference to lock at start: name@constraint
    digest: str

    def step(self, step_id: str) -> Step:
        return next(s for s in self.spec.execute if s.id == step_id)

    def checks(self, step_id: str | None, at: str = "after") -> list[Validation]:
        return [v for v in self.spec.validate_ if v.step == step_id and v.at == at]

    def document(self) -> dict[str, Any]:
        """The canonical JSON-able form the digest is computed over (and the run stores)."""
        return {
            "pipeline": self.pipeline,
            "spec": self.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            "order": list(self.order),
            "skills": list(self.skills),
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Plan:
        """A stored plan back; its digest is recomputed, so a plan row altered in the store shows."""
        spec = PipelineSpec.model_validate(document["spec"])
        plan = cls(document["pipeline"], spec, tuple(document["order"]), tuple(document["skills"]), "")
        return cls(plan.pipeline, spec, plan.order, plan.skills, digest_of(plan.document()))


def digest_of(document: Any) -> str:
    return hashlib.sha256(canonical(document)).hexdigest()


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def compile_plan(pipeline: Pipeline, locate: Locator | None = None) -> Plan:
    """The plan of a valid Pipeline, or `ManifestErrors` naming every bad expression where it is."""
    locate = locate or (lambda _loc: ("<pipeline>", 1, 1))
    spec = pipeline.spec
    errors: list[ManifestError] = []
    ancestors = _ancestors(spec.execute)

    def check(loc: Loc, expression: Expression, reads: frozenset[str] | None) -> None:
        if reads is None:
            return
        for ref in sorted(expression.step_refs):
            if ref not in reads:
                problem = (
                    f"reads steps.{ref}, which is not a step"
                    if ref not in ancestors
                    else f"reads steps.{ref} without needing it (add '{ref}' to needs)"
                )
                errors.append(_error(pipeline, locate, loc, problem))

    def condition(loc: Loc, text: str | None, names: frozenset[str], reads: frozenset[str] | None) -> None:
        if text is None:
            return
        try:
            check(loc, compile_condition(text, names), reads)
        except ExprError as exc:
            errors.append(_error(pipeline, locate, loc, str(exc)))

    def template(loc: Loc, value: Any, names: frozenset[str], reads: frozenset[str] | None) -> None:
        for at, text in _strings(loc, value):
            try:
                for expression in compile_template(text, names).expressions:
                    check(at, expression, reads)
            except ExprError as exc:
                errors.append(_error(pipeline, locate, at, str(exc)))

    for name, value in spec.context.values.items():
        template(("spec", "context", "values", name), value, _RUN, None)
    for i, retrieval in enumerate(spec.context.retrieve):
        template(("spec", "context", "retrieve", i, "query"), retrieval.query, _CONTEXT, None)
    if spec.route is not None:
        for i, rule in enumerate(spec.route.rules):
            condition(("spec", "route", "rules", i, "when"), rule.when, _CONTEXT, None)
        if spec.route.llm is not None:
            template(("spec", "route", "llm", "prompt"), spec.route.llm.prompt, _CONTEXT, None)
    for i, step in enumerate(spec.execute):
        at: Loc = ("spec", "execute", i)
        reads = ancestors[step.id]
        item_names = _STEPS | _ITEM if step.foreach else _STEPS
        condition((*at, "when"), step.when, _STEPS, reads)
        if step.foreach is not None:
            template((*at, "foreach"), step.foreach, _STEPS, reads)
        template((*at, "input"), step.input, item_names, reads)
        if step.approval is not None:
            condition((*at, "approval", "when"), step.approval.when, item_names, reads)
    every = frozenset(ancestors)
    for i, check_ in enumerate(spec.validate_):
        at = ("spec", "validate", i)
        reads = every if check_.step is None else ancestors[check_.step] | {check_.step}
        condition((*at, "assert"), check_.assert_, _CHECK, reads)
        if check_.llm is not None:
            template((*at, "llm", "prompt"), check_.llm.prompt, _CHECK, reads)
    for i, sink in enumerate(spec.sink):
        at = ("spec", "sink", i)
        condition((*at, "when"), sink.when, _SINK, every)
        target = sink.http or sink.file or sink.table
        template(
            (*at, *_sink_field(sink)), target.model_dump(by_alias=True) if target else None, _SINK, every
        )
    template(("spec", "output"), spec.output, _STEPS, every)
    if errors:
        raise ManifestErrors(errors)

    skills = {s.skill for s in spec.execute if s.skill != ROUTED}
    skills |= {r.skill for r in spec.context.retrieve}
    if spec.route is not None:
        skills |= set(spec.route.choices.values())
    plan = Plan(pipeline.name, spec, _order(spec.execute), tuple(sorted(skills)), "")
    return Plan(plan.pipeline, spec, plan.order, plan.skills, digest_of(plan.document()))


def _sink_field(sink: Any) -> tuple[str]:
    return ("http",) if sink.http else ("file",) if sink.file else ("table",)


def _strings(loc: Loc, value: Any) -> Iterator[tuple[Loc, str]]:
    """Every template string in a JSON-like value, with its path."""
    if isinstance(value, str):
        if "{{" in value:
            yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings((*loc, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings((*loc, index), item)


def _ancestors(steps: list[Step]) -> dict[str, frozenset[str]]:
    """Every step each step needs, directly or through others (the kind has refused cycles)."""
    needs = {s.id: s.needs for s in steps}
    found: dict[str, frozenset[str]] = {}

    def of(step_id: str) -> frozenset[str]:
        if step_id not in found:
            direct = set(needs[step_id])
            found[step_id] = frozenset(direct.union(*(of(n) for n in needs[step_id])))
        return found[step_id]

    for step in steps:
        of(step.id)
    return found


def _order(steps: list[Step]) -> tuple[str, ...]:
    """Kahn's algorithm, ties broken by the order written: a stable, readable execution order."""
    remaining = {s.id: set(s.needs) for s in steps}
    order: list[str] = []
    while remaining:
        ready = next(s.id for s in steps if s.id in remaining and not remaining[s.id])
        order.append(ready)
        del remaining[ready]
        for waiting in remaining.values():
            waiting.discard(ready)
    return tuple(order)


def _error(pipeline: Pipeline, locate: Locator, loc: Loc, problem: str) -> ManifestError:
    file, line, column = locate(loc)
    return ManifestError(file, line, column, pipeline.ref, render_path(loc), problem=problem)
