"""Deterministic scorers that compare the answer with what is expected: exact, contains, regex, JSON
Schema, JSON diff and numeric tolerance. Each passes or fails; JSON diff and contains also give partial
credit in `value`."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from fleetplane.evals.scorers.params import Params, expected_value
from fleetplane.evals.scoring import Sample, Score, ScorerError, Tier, register_scorer

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


def parse_json(sample: Sample) -> tuple[Any, str | None]:
    """The answer as data: the target's structured output, else the text parsed (fences allowed)."""
    if sample.structured is not None:
        return sample.structured, None
    text = sample.output.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"the answer is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


def _verdict(ok: bool, explanation: str = "") -> Score:
    return Score(1.0 if ok else 0.0, passed=ok, explanation=explanation)


@dataclass(frozen=True)
class Exact:
    value: Any
    ignore_case: bool
    type: str = "exact"
    tier: Tier = "deterministic"

    async def score(self, sample: Sample) -> Score:
        want = expected_value(sample, self.type, self.value)
        if want is None:
            return Score(0.0, passed=False, explanation="the case has no expected answer")
        if not isinstance(want, str):
            got, error = parse_json(sample)
            return _verdict(error is None and got == want, error or "")
        got_text, want_text = sample.output.strip(), want.strip()
        if self.ignore_case:
            got_text, want_text = got_text.casefold(), want_text.casefold()
        return _verdict(got_text == want_text, "" if got_text == want_text else f"expected {want!r}")


@register_scorer("exact", "deterministic", "the answer equals the expected one (JSON-equal for data)")
def _exact(params: Mapping[str, Any]) -> Exact:
    p = Params("exact", params)
    scorer = Exact(p.take("value", object, None), p.take("ignoreCase", bool, False))
    p.done()
    return scorer


@dataclass(frozen=True)
class Contains:
    value: Any
    mode: str  # all | any
    ignore_case: bool
    negate: bool
    type: str = "contains"
    tier: Tier = "deterministic"

    async def score(self, sample: Sample) -> Score:
        want = expected_value(sample, self.type, self.value)
        needles = [str(w) for w in (want if isinstance(want, list) else [want]) if w is not None]
        if not needles:
            return Score(
                0.0, passed=False, explanation="nothing to look for: no value and no expected answer"
            )
        hay = sample.output.casefold() if self.ignore_case else sample.output
        found = [n for n in needles if (n.casefold() if self.ignore_case else n) in hay]
        if self.negate:
            ok = not found
            return _verdict(ok, f"found {found[0]!r}" if found else "")
        ok = len(found) == len(needles) if self.mode == "all" else bool(found)
        value = len(found) / len(needles) if self.mode == "all" else float(ok)
        missing = [n for n in needles if n not in found]
        return Score(value, passed=ok, explanation="" if ok else f"missing {missing[0]!r}")


@register_scorer("contains", "deterministic", "the answer contains the value(s); partial credit for 'all'")
def _contains(params: Mapping[str, Any]) -> Contains:
    p = Params("contains", params)
    mode = p.take("mode", str, "all")
    if mode not in ("all", "any"):
        raise ScorerError(f"scorer 'contains': 'mode' must be all or any, found {mode!r}", param="mode")
    scorer = Contains(
        p.take("value", object, None), mode, p.take("ignoreCase", bool, False), p.take("not", bool, False)
    )
    p.done()
    return scorer


@dataclass(frozen=True)
class Regex:
    pattern: re.Pattern[str] | None
    flags: int
    type: str = "regex"
    tier: Tier = "deterministic"

    async def score(self, sample: Sample) -> Score:
        pattern = self.pattern
        own = expected_value(sample, self.type, None) if sample.vars.get(self.type) is not None else None
        if own is not None:
            pattern = re.compile(str(own), self.flags)
        if pattern is None:
            return Score(0.0, passed=False, explanation="no pattern for this case")
        ok = pattern.search(sample.output) is not None
        return _verdict(ok, "" if ok else f"no match for /{pattern.pattern}/")


@register_scorer("regex", "deterministic", "the answer matches a regular expression (re.search)")
def _regex(params: Mapping[str, Any]) -> Regex:
    p = Params("regex", params)
    source = p.take("pattern", str, None)
    flags = re.IGNORECASE if p.take("ignoreCase", bool, False) else 0
    p.done()
    try:
        compiled = re.compile(source, flags) if source is not None else None
    except re.error as exc:
        raise ScorerError(f"scorer 'regex': bad pattern {source!r}: {exc}", param="pattern") from exc
    return Regex(compiled, flags)


@dataclass(frozen=True)
class JsonSchema:
    schema: Mapping[str, Any] | None
    type: str = "json-schema"
    tier: Tier = "deterministic"

    async def score(self, sample: Sample) -> Score:
        schema = expected_value(sample, self.type, self.schema)
        if not isinstance(schema, Mapping):
            return Score(0.0, passed=False, explanation="no JSON Schema for this case")
        data, error = parse_json(sample)
        if error is not None:
            return _verdict(False, error)
        problem = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
        if problem is None:
            return _verdict(True)
        where = "/".join(str(p) for p in problem.absolute_path) or "(root)"
        return _verdict(False, f"{where}: {problem.message}")


@register_scorer("json-schema", "deterministic", "the answer is JSON valid against a JSON Schema")
def _json_schema(params: Mapping[str, Any]) -> JsonSchema:
    p = Params("json-schema", params)
    schema = p.take("schema", dict, None)
    p.done()
    if schema is not None:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.exceptions.SchemaError as exc:
            raise ScorerError(
                f"scorer 'json-schema': not a valid schema: {exc.message}", param="schema"
            ) from exc
    return JsonSchema(schema)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested JSON by path ('a.b[0]'); an empty container is a leaf."""
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, list) and data:
        out = {}
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: data}


@dataclass(frozen=True)
class JsonDiff:
    value: Any
    threshold: float
    type: str = "json-diff"
    tier: Tier = "deterministic"

    async def score(self, sample: Sample) -> Score:
        want = expected_value(sample, self.type, self.value)
        data, error = parse_json(sample)
        if error is not None:
            return _verdict(False, error)
        got_leaves, want_leaves = flatten(data), flatten(want)
        paths = sorted(set(got_leaves) | set(want_leaves))
        differ = [p for p in paths if got_leaves.get(p, _ABSENT) != want_leaves.get(p, _ABSENT)]
        share = 1.0 - len(differ) / len(paths)
        ok = share >= self.threshold
        shown = ", ".join(p or "(root)" for p in differ[:3])
        return Score(
            share,
            passed=ok,
            explanation=f"{len(differ)} of {len(paths)} fields differ: {shown}" if differ else "",
        )


_ABSENT = object()


@register_scorer("json-diff", "deterministic", "the share of JSON fields equal to the expected ones")
def _json_diff(params: Mapping[str, Any]) -> JsonDiff:
    p = Params("json-diff", params)
    scorer = JsonDiff(p.take("value", object, None), float(p.take("threshold", (int, float), 1.0)))
    p.done()
    return scorer


@dataclass(frozen=True)
class Numeric:
    value: float | None
    absolute: float
    relative: float
    pick: str  # first | last number in the answer
    type: str = "numeric"
    tier: Tier = "deterministic"

    async def score(self, sample: Sample) -> Score:
        want = expected_value(sample, self.type, self.value)
        try:
            target = float(str(want).replace(",", ""))
        except ValueError:
            return Score(0.0, passed=False, explanation=f"the expected answer {want!r} is not a number")
        found = _NUMBER.findall(sample.output)
        if not found:
            return _verdict(False, "no number in the answer")
        got = float((found[0] if self.pick == "first" else found[-1]).replace(",", ""))
        # A hair of slack so that 3000.49 is within 0.01 of 3000.5 despite binary floating point.
        slack = 1e-12 * max(1.0, abs(target))
        ok = math.isclose(got, target, rel_tol=self.relative, abs_tol=self.absolute + slack)
        return _verdict(ok, "" if ok else f"{got:g} is not within tolerance of {target:g}")


@register_scorer("numeric", "deterministic", "the number in the answer is within a tolerance of the expected")
def _numeric(params: Mapping[str, Any]) -> Numeric:
    p = Params("numeric", params)
    pick = p.take("pick", str, "last")
    if pick not in ("first", "last"):
        raise ScorerError(f"scorer 'numeric': 'pick' must be first or last, found {pick!r}", param="pick")
    value = p.take("value", (int, float), None)
    scorer = Numeric(
        None if value is None else float(value),
        float(p.take("tolerance", (int, float), 1e-9)),
        float(p.take("relativeTolerance", (int, float), 0.0)),
        pick,
    )
    p.done()
    return scorer
