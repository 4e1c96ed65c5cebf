"""The JSON Schema subset a skill's `input` and `output` may use, and the validator that applies it.

Supported keywords: `type`, `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`,
`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`, `pattern`,
`minItems`, `maxItems`, `uniqueItems`, `minProperties`, `maxProperties`, `anyOf`, `oneOf`, `allOf`,
`not`, and the annotations (`title`, `description`, `default`, `examples`, `format`, `$schema`, `$id`,
`$comment`). Anything else (`$ref`, `if`/`then`, `patternProperties` ...) is refused when the skill is
validated rather than silently ignored at run time: a contract must mean what it says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from fleetplane.manifests.errors import render_path

Loc = tuple[str | int, ...]

TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_ANNOTATIONS = {"title", "description", "default", "examples", "format", "$schema", "$id", "$comment"}
_SCHEMA_KEYS = {"properties", "additionalProperties", "items", "not"}
_SCHEMA_LISTS = {"anyOf", "oneOf", "allOf"}
_COUNTS = {"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"}
_NUMBERS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
KEYWORDS = sorted(
    _ANNOTATIONS | _SCHEMA_KEYS | _SCHEMA_LISTS | _COUNTS | _NUMBERS
    | {"type", "required", "enum", "const", "pattern", "uniqueItems"}
)  # fmt: skip


@dataclass(frozen=True)
class SchemaProblem:
    """A fault in a schema itself, at `loc` inside it."""

    loc: Loc
    problem: str


def check_schema(schema: Any, loc: Loc = ()) -> Iterator[SchemaProblem]:
    """Every fault in `schema` as a schema of the supported subset."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        yield SchemaProblem(loc, "a schema must be a mapping (or true/false)")
        return
    for key, value in schema.items():
        at = (*loc, key)
        if key not in KEYWORDS:
            yield SchemaProblem(at, f"unsupported JSON Schema keyword '{key}'")
        elif key == "type":
            names = value if isinstance(value, list) else [value]
            if not names or any(n not in TYPES for n in names):
                yield SchemaProblem(at, "expected one of: " + ", ".join(TYPES) + " (or a list of them)")
        elif key == "properties":
            if not isinstance(value, Mapping):
                yield SchemaProblem(at, "expected a mapping of property names to schemas")
            else:
                for name, sub in value.items():
                    yield from check_schema(sub, (*at, name))
        elif key in ("additionalProperties", "items", "not"):
            yield from check_schema(value, at)
        elif key in _SCHEMA_LISTS:
            if not isinstance(value, list) or not value:
                yield SchemaProblem(at, "expected a non-empty list of schemas")
            else:
                for i, sub in enumerate(value):
                    yield from check_schema(sub, (*at, i))
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                yield SchemaProblem(at, "expected a list of property names")
        elif key == "enum":
            if not isinstance(value, list) or not value:
                yield SchemaProblem(at, "expected a non-empty list of values")
        elif key in _COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                yield SchemaProblem(at, "expected a whole number of 0 or more")
        elif key in _NUMBERS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                yield SchemaProblem(at, "expected a number")
        elif key == "pattern":
            try:
                re.compile(value)
            except (re.error, TypeError) as exc:
                yield SchemaProblem(at, f"not a regular expression: {exc}")
        elif key == "uniqueItems" and not isinstance(value, bool):
            yield SchemaProblem(at, "expected true or false")


def is_object_schema(schema: Any) -> bool:
    return isinstance(schema, Mapping) and schema.get("type") == "object"


@dataclass(frozen=True)
class Violation:
    """Where a value breaks its schema (`input.items[2].qty`) and how."""

    loc: Loc
    message: str

    def render(self, root: str) -> str:
        return f"{render_path((root, *self.loc))}: {self.message}"


def validate(value: Any, schema: Any) -> list[Violation]:
    """Every way `value` breaks `schema` (empty when it conforms)."""
    return list(_check(value, schema, ()))


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _has_type(value: Any, name: str) -> bool:
    actual = _type_of(value)
    if name == "number":
        return actual in ("number", "integer")
    if name == "integer":
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    return actual == name


def shown(value: Any) -> str:
    """A value in a message, as JSON and cut short."""
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 60 else text[:57] + "..."


_ARTICLE = {"object": "an object", "array": "an array", "integer": "an integer"}


def _a(name: str) -> str:
    return _ARTICLE.get(name, f"a {name}")


def _check(value: Any, schema: Any, loc: Loc) -> Iterator[Violation]:
    if schema is True or schema == {}:
        return
    if schema is False:
        yield Violation(loc, "no value is allowed here")
        return
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_has_type(value, n) for n in names):
            yield Violation(loc, f"expected {' or '.join(_a(n) for n in names)}, found {shown(value)}")
            return
    if "const" in schema and not json_equal(value, schema["const"]):
        yield Violation(loc, f"expected {shown(schema['const'])}, found {shown(value)}")
    if "enum" in schema and not any(json_equal(value, option) for option in schema["enum"]):
        options = ", ".join(shown(o) for o in schema["enum"])
        yield Violation(loc, f"expected one of {options}, found {shown(value)}")
    yield from _bounds(value, schema, loc)
    if isinstance(value, Mapping):
        yield from _object(value, schema, loc)
    if isinstance(value, list | tuple):
        yield from _array(value, schema, loc)
    for sub in schema.get("allOf", ()):
        yield from _check(value, sub, loc)
    if "anyOf" in schema and not any(not validate(value, s) for s in schema["anyOf"]):
        yield Violation(loc, f"matches none of the anyOf schemas, found {shown(value)}")
    if "oneOf" in schema:
        matched = sum(1 for s in schema["oneOf"] if not validate(value, s))
        if matched != 1:
            yield Violation(loc, f"matches {matched} of the oneOf schemas (expected exactly 1)")
    if "not" in schema and not validate(value, schema["not"]):
        yield Violation(loc, f"matches the schema under 'not', found {shown(value)}")


def _bounds(value: Any, schema: Mapping[str, Any], loc: Loc) -> Iterator[Violation]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        for key, test, words in (
            ("minimum", lambda v, b: v >= b, "at least"),
            ("maximum", lambda v, b: v <= b, "at most"),
            ("exclusiveMinimum", lambda v, b: v > b, "greater than"),
            ("exclusiveMaximum", lambda v, b: v < b, "less than"),
        ):
            if key in schema and not test(value, schema[key]):
                yield Violation(loc, f"expected a number {words} {schema[key]}, found {shown(value)}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield Violation(loc, f"expected at least {schema['minLength']} characters, found {len(value)}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield Violation(loc, f"expected at most {schema['maxLength']} characters, found {len(value)}")
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            yield Violation(loc, f"does not match the pattern {schema['pattern']!r}, found {shown(value)}")


def _object(value: Mapping[str, Any], schema: Mapping[str, Any], loc: Loc) -> Iterator[Violation]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            yield Violation(loc, f"required property '{name}' is missing")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            yield from _check(item, properties[name], (*loc, name))
        elif extra is False:
            yield Violation((*loc, name), "unexpected property (additionalProperties is false)")
        elif isinstance(extra, Mapping):
            yield from _check(item, extra, (*loc, name))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        yield Violation(loc, f"expected at least {schema['minProperties']} properties, found {len(value)}")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        yield Violation(loc, f"expected at most {schema['maxProperties']} properties, found {len(value)}")


def _array(value: list[Any] | tuple[Any, ...], schema: Mapping[str, Any], loc: Loc) -> Iterator[Violation]:
    if "items" in schema:
        for i, item in enumerate(value):
            yield from _check(item, schema["items"], (*loc, i))
    if "minItems" in schema and len(value) < schema["minItems"]:
        yield Violation(loc, f"expected at least {schema['minItems']} items, found {len(value)}")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        yield Violation(loc, f"expected at most {schema['maxItems']} items, found {len(value)}")
    if schema.get("uniqueItems"):
        seen: list[Any] = []
        for item in value:
            if any(json_equal(item, s) for s in seen):
                yield Violation(loc, f"expected unique items, found {shown(item)} twice")
                break
            seen.append(item)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 equals 1.0, and mappings and lists compare item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
