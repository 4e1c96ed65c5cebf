"""A small JSON Schema checker for the keywords the simulator's argument generator supports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def _resolve(root: Mapping[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        node = node[part]
    return node


def problems(value: Any, schema: Any, root: Mapping[str, Any] | None = None, at: str = "$") -> list[str]:
    root = root if root is not None else schema
    if not isinstance(schema, Mapping):
        return []
    if "$ref" in schema:
        return problems(value, _resolve(root, schema["$ref"]), root, at)
    found: list[str] = []
    if "const" in schema and value != schema["const"]:
        found.append(f"{at}: expected const {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: {value!r} not in enum")
    for key in ("anyOf", "oneOf"):
        if key in schema and all(problems(value, option, root, at) for option in schema[key]):
            found.append(f"{at}: matches no option of {key}")
    for part in schema.get("allOf", ()):
        found += problems(value, part, root, at)
    declared = schema.get("type")
    if declared is not None:
        kinds = declared if isinstance(declared, list) else [declared]
        ok = any(
            isinstance(value, _TYPES[k]) and not (k in ("integer", "number") and isinstance(value, bool))
            for k in kinds
        )
        if not ok:
            return [*found, f"{at}: {value!r} is not {declared}"]
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                found.append(f"{at}: missing required {name!r}")
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                found += problems(value[name], sub, root, f"{at}.{name}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{at}: fewer than minItems")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            found.append(f"{at}: more than maxItems")
        for i, item in enumerate(value):
            found += problems(item, schema.get("items", {}), root, f"{at}[{i}]")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{at}: below minimum")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{at}: above maximum")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            found.append(f"{at}: not above exclusiveMinimum")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            found.append(f"{at}: not below exclusiveMaximum")
        if "multipleOf" in schema and value % schema["multipleOf"]:
            found.append(f"{at}: not a multiple of {schema['multipleOf']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            found.append(f"{at}: shorter than minLength")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"{at}: longer than maxLength")
        formats = {
            "date": r"\d{4}-\d{2}-\d{2}$",
            "date-time": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
            "email": r"[^@\s]+@[^@\s]+\.[a-z]+$",
            "uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
            "uri": r"https?://\S+$",
        }
        pattern = formats.get(schema.get("format", ""))
        if pattern and not re.match(pattern, value):
            found.append(f"{at}: {value!r} is not a {schema['format']}")
    return found
