"""Tool-call arguments generated from a tool's JSON Schema, valid for it and seeded.

Covers what tool schemas use in practice: objects with required and optional properties, arrays with
item counts, strings with enums, formats and lengths, bounded numbers, booleans, nulls, `const`,
`anyOf`/`oneOf`/`allOf`, type lists and local `$ref`s. A `pattern` cannot be satisfied in general and is
ignored.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from fleetplane.sim.generate import WORDS

_MAX_DEPTH = 8


def generate_arguments(schema: Any, rng: random.Random) -> dict[str, Any]:
    """Arguments for a function tool; tools take an object, so anything else yields `{}`."""
    value = _Generator(schema if isinstance(schema, Mapping) else {}, rng).value(schema, 0)
    return value if isinstance(value, dict) else {}


class _Generator:
    def __init__(self, root: Mapping[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def value(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, Mapping):
            # `true` or a missing schema accepts anything; a short string is the least surprising.
            return self.words(1, 2)
        if "$ref" in schema and depth < _MAX_DEPTH:
            return self.value(self.resolve(str(schema["$ref"])), depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                concrete = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
                return self.value(self.rng.choice(concrete or options), depth + 1)
        if isinstance(schema.get("allOf"), list):
            return self.value(self.merge(schema), depth + 1)
        kind = self.kind(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.string(schema)

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                return {}
            node = node[part]
        return node

    def merge(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        properties: dict[str, Any] = dict(merged.get("properties") or {})
        required: list[str] = list(merged.get("required") or [])
        for part in schema["allOf"]:
            part = self.resolve(str(part["$ref"])) if isinstance(part, Mapping) and "$ref" in part else part
            if not isinstance(part, Mapping):
                continue
            for key, value in part.items():
                if key == "properties" and isinstance(value, Mapping):
                    properties.update(value)
                elif key == "required" and isinstance(value, list):
                    required.extend(v for v in value if v not in required)
                elif key not in merged:
                    merged[key] = value
        if properties:
            merged["properties"] = properties
            merged.setdefault("type", "object")
        if required:
            merged["required"] = required
        return merged

    def kind(self, schema: Mapping[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            concrete = [t for t in declared if t != "null"]
            declared = concrete[0] if concrete else "null"
        if isinstance(declared, str):
            return declared
        if "properties" in schema:
            return "object"
        if "items" in schema:
            return "array"
        return "string"

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        required = set(schema.get("required") or ())
        result: dict[str, Any] = {}
        for name, sub in properties.items():
            # Optional properties appear about half the time, as a model would fill them.
            if name in required or (depth < _MAX_DEPTH and self.rng.random() < 0.5):
                result[name] = self.value(sub, depth + 1)
        return result

    def array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 3)))
        count = low if depth >= _MAX_DEPTH else self.rng.randint(max(low, min(1, high)), max(low, high))
        prefix = schema.get("prefixItems")
        items = schema.get("items", {})
        values = []
        for i in range(count):
            if isinstance(prefix, list) and i < len(prefix):
                values.append(self.value(prefix[i], depth + 1))
            else:
                values.append(self.value(items, depth + 1))
        if schema.get("uniqueItems") and all(isinstance(v, str | int | float | bool) for v in values):
            values = list(dict.fromkeys(values))
        return values

    def bounds(self, schema: Mapping[str, Any], step: float) -> tuple[float, float]:
        low = _numeric(schema.get("minimum"))
        if (exclusive := _numeric(schema.get("exclusiveMinimum"))) is not None:
            low = exclusive + step
        high = _numeric(schema.get("maximum"))
        if (exclusive := _numeric(schema.get("exclusiveMaximum"))) is not None:
            high = exclusive - step
        if high is None:
            high = (low if low is not None else 0.0) + 100.0
        if low is None:
            low = high - 100.0
        return low, max(low, high)

    def integer(self, schema: Mapping[str, Any]) -> int:
        low, high = self.bounds(schema, 1)
        first, last = math.ceil(low), math.floor(high)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            multiples = range(math.ceil(first / step), math.floor(last / step) + 1)
            if multiples:
                return self.rng.choice(multiples) * step
        return self.rng.randint(first, max(first, last))

    def number(self, schema: Mapping[str, Any]) -> float:
        low, high = self.bounds(schema, 0.01)
        value = round(self.rng.uniform(low, high), 2)
        return min(max(value, low), high)

    def string(self, schema: Mapping[str, Any]) -> str:
        fmt = schema.get("format")
        if fmt == "date-time":
            return f"2025-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}T12:00:00Z"
        if fmt == "date":
            return f"2025-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"
        if fmt == "time":
            return f"{self.rng.randint(0, 23):02d}:{self.rng.randint(0, 59):02d}:00"
        if fmt == "email":
            return f"{self.words(1, 1).replace(' ', '')}@example.com"
        if fmt in ("uri", "url"):
            return f"https://example.com/{self.words(1, 2).replace(' ', '/')}"
        if fmt == "uuid":
            return "-".join(f"{self.rng.getrandbits(b * 4):0{b}x}" for b in (8, 4, 4, 4, 12))
        text = self.words(1, 3)
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        while len(text) < low:
            text = f"{text} {self.words(1, 1)}"
        if isinstance(high, int) and len(text) > high:
            text = text[:high]
        return text

    def words(self, low: int, high: int) -> str:
        return "".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high))).strip()


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
