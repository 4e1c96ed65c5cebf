"""Tool-call arguments are valid for the tool's JSON Schema and seeded."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sim_schema_check import problems
from sim_support import WEATHER_TOOL_SCHEMA

from fleetplane.sim.toolargs import generate_arguments

SCHEMAS: dict[str, dict[str, Any]] = {
    "weather": WEATHER_TOOL_SCHEMA,
    "everything": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 30, "maxLength": 40},
            "code": {"type": "string", "maxLength": 3},
            "when": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "email": {"type": "string", "format": "email"},
            "id": {"type": "string", "format": "uuid"},
            "link": {"type": "string", "format": "uri"},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "count": {"type": "integer", "minimum": 10, "maximum": 20, "multipleOf": 5},
            "flag": {"type": "boolean"},
            "nothing": {"type": "null"},
            "maybe": {"type": ["integer", "null"], "maximum": -5},
            "fixed": {"const": "v1"},
            "tags": {
                "type": "array",
                "items": {"type": "string", "enum": ["a", "b"]},
                "minItems": 2,
                "maxItems": 4,
            },
            "either": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 3, "maximum": 3}]},
            "nested": {
                "type": "object",
                "properties": {"deep": {"$ref": "#/$defs/leaf"}},
                "required": ["deep"],
            },
            "merged": {
                "allOf": [
                    {"$ref": "#/$defs/leaf"},
                    {"properties": {"extra": {"type": "boolean"}}, "required": ["extra"]},
                ]
            },
        },
        "required": [
            "name",
            "code",
            "when",
            "day",
            "email",
            "id",
            "link",
            "ratio",
            "count",
            "flag",
            "nothing",
            "maybe",
            "fixed",
            "tags",
            "either",
            "nested",
            "merged",
        ],
        "$defs": {"leaf": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
    },
    "untyped": {"properties": {"q": {}, "items": {"items": {"type": "number"}}}, "required": ["q", "items"]},
    "recursive": {
        "type": "object",
        "properties": {"node": {"$ref": "#/$defs/node"}},
        "required": ["node"],
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}
                },
                "required": ["children"],
            }
        },
    },
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_arguments_satisfy_the_schema(name: str) -> None:
    schema = SCHEMAS[name]
    for seed in range(60):
        value = generate_arguments(schema, random.Random(seed))
        assert problems(value, schema) == [], (seed, value)


def test_arguments_are_seeded() -> None:
    schema = SCHEMAS["everything"]
    assert generate_arguments(schema, random.Random(5)) == generate_arguments(schema, random.Random(5))
    assert generate_arguments(schema, random.Random(5)) != generate_arguments(schema, random.Random(6))


def test_non_object_schemas_give_empty_arguments() -> None:
    assert generate_arguments({"type": "string"}, random.Random(1)) == {}
    assert generate_arguments(None, random.Random(1)) == {}
    assert generate_arguments({}, random.Random(1)) == {}
