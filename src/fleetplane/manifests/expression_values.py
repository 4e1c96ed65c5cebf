"""The values of the expression language (`expressions.py`): how a value is named in an error, how it
reads as text, and the functions that may be called or used as filters (`x | f(arg)` is `f(x, arg)`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_text(value: Any) -> str:
    """How a value reads inside a template: null as empty, booleans as true/false, data as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return as_json(value)


def _length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str | list | dict):
        return len(value)
    raise TypeError(f"length of {type_name(value)}")


def _text(name: str, method: Callable[[str], str]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{name} of {type_name(value)}")
        return method(value)

    return apply


def as_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def _join(value: Any, separator: Any = "") -> str:
    if not isinstance(value, list) or not isinstance(separator, str):
        raise TypeError(f"join of {type_name(value)}")
    return separator.join(to_text(item) for item in value)


def contains(value: Any, item: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        if not isinstance(item, str):
            raise TypeError(f"contains of {type_name(item)} in a string")
        return item in value
    if isinstance(value, list | dict):
        return item in value
    raise TypeError(f"contains in {type_name(value)}")


# name -> (function, fewest arguments, most arguments); a filter's input counts as the first.
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "contains": (contains, 2, 2),
    "default": (_default, 2, 2),
    "join": (_join, 1, 2),
    "json": (as_json, 1, 1),
    "length": (_length, 1, 1),
    "lower": (_text("lower", str.lower), 1, 1),
    "upper": (_text("upper", str.upper), 1, 1),
}
FUNCTION_LIST = ", ".join(sorted(FUNCTIONS))
