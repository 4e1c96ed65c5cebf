"""Guardrails: declarative checks a skill's contract runs on its input and its output, each a blocking
verdict rather than a log line.

    guardrails:
      - {type: schema, on: output, schema: {properties: {reply: {maxLength: 500}}}}
      - {type: deny, words: [password, "BEGIN PRIVATE KEY"]}          # case-insensitive, any string
      - {type: regex, on: output, field: reply, pattern: '\\b\\d{13,16}\\b'}   # must not match
      - {type: regex, on: input, field: email, pattern: '@', mode: require}  # must match
      - {type: maxLength, on: input, max: 20000}                     # the whole value as JSON

`on` is `input`, `output` or `both` (the default); `field` is a key path inside the value (`a.b`), the
whole value without it. A deny or regex guardrail without a field looks at every string in the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from fleetplane.skills.checks import Checker, Loc
from fleetplane.skills.schema import check_schema, validate

TYPES = ("schema", "deny", "regex", "maxLength")
SIDES = ("input", "output", "both")
_KEYS = {
    "schema": ("type", "name", "on", "schema"),
    "deny": ("type", "name", "on", "field", "words"),
    "regex": ("type", "name", "on", "field", "pattern", "mode"),
    "maxLength": ("type", "name", "on", "field", "max"),
}
_REQUIRED = {"schema": ("schema",), "deny": ("words",), "regex": ("pattern",), "maxLength": ("max",)}


def check_specs(check: Checker, loc: Loc) -> tuple[dict[str, Any], ...]:
    """The `guardrails` list at `loc`, every fault reported; the valid entries with defaults filled in."""
    specs: list[dict[str, Any]] = []
    for i, raw in enumerate(check.items(loc)):
        at = (*loc, i)
        if not isinstance(raw, dict):
            check.add(at, expected="a mapping with a type: " + ", ".join(TYPES))
            continue
        kind = check.choice((*at, "type"), TYPES, None)
        if kind is None:
            continue
        before = len(check.problems)
        spec = check.mapping(at, _KEYS[kind], required=_REQUIRED[kind])
        spec["on"] = check.choice((*at, "on"), SIDES, "both")
        if "name" in spec:
            check.string((*at, "name"))
        if "field" in spec:
            check.string((*at, "field"))
        if kind == "schema":
            for problem in check_schema(spec.get("schema", {})):
                check.add((*at, "schema", *problem.loc), problem=problem.problem, show=False)
        elif kind == "deny":
            if not check.strings((*at, "words")) and "words" in spec:
                check.add((*at, "words"), expected="a non-empty list of strings")
        elif kind == "regex":
            spec["mode"] = check.choice((*at, "mode"), ("deny", "require"), "deny")
            pattern = check.string((*at, "pattern"))
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    check.add((*at, "pattern"), problem=f"not a regular expression: {exc}")
        elif "max" in spec:
            spec["max"] = check.integer((*at, "max"), 0, minimum=1)
        if len(check.problems) == before:
            specs.append(spec)
    return tuple(specs)


def describe(spec: Mapping[str, Any], index: int) -> str:
    label = f"guardrails[{index}] ({spec['type']}"
    return label + (f" '{spec['name']}')" if spec.get("name") else ")")


def violations(specs: tuple[dict[str, Any], ...], value: Any, side: str) -> Iterator[str]:
    """What each guardrail that applies to `side` ("input" or "output") finds wrong with `value`."""
    for index, spec in enumerate(specs):
        if spec.get("on", "both") not in (side, "both"):
            continue
        found = _check(spec, value, side)
        if found is not None:
            yield f"{describe(spec, index)}: {found}"


def _check(spec: Mapping[str, Any], value: Any, side: str) -> str | None:
    field = spec.get("field")
    target = _field(value, field) if field else value
    where = f"{side}.{field}" if field else side
    kind = spec["type"]
    if kind == "schema":
        problems = validate(value, spec["schema"])
        return problems[0].render(side) if problems else None
    if target is _MISSING:
        return None  # an absent optional field: the schema says whether it must be there
    if kind == "deny":
        for text in _strings(target):
            lowered = text.lower()
            for word in spec["words"]:
                if word.lower() in lowered:
                    return f"{where} contains the denied word {word!r}"
        return None
    if kind == "regex":
        pattern = re.compile(spec["pattern"])
        hit = any(pattern.search(text) for text in _strings(target))
        if spec.get("mode", "deny") == "deny" and hit:
            return f"{where} matches the denied pattern {spec['pattern']!r}"
        if spec.get("mode") == "require" and not hit:
            return f"{where} does not match the required pattern {spec['pattern']!r}"
        return None
    size = len(target) if isinstance(target, str) else len(orjson.dumps(target, default=str))
    if size > spec["max"]:
        return f"{where} is {size} characters long, more than {spec['max']}"
    return None


_MISSING = object()


def _field(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
