"""One YAML document against its kind: pydantic's verdict rewritten as plain `ManifestError`s."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from fleetplane.manifests.document import API_VERSION, KINDS, Manifest
from fleetplane.manifests.errors import ManifestError, one_of, render_path, render_value
from fleetplane.manifests.fields import FieldError
from fleetplane.manifests.source import YamlDocument

Loc = tuple[str | int, ...]

# What a value of each type looks like, for pydantic's type errors.
_EXPECTED_TYPE = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "datetime_type": "a date and time, e.g. 2026-12-31T00:00:00Z",
    "datetime_parsing": "a date and time, e.g. 2026-12-31T00:00:00Z",
    "datetime_from_date_parsing": "a date and time, e.g. 2026-12-31T00:00:00Z",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "of at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "of at most"),
}


def is_manifest(data: Any) -> bool:
    """A document with neither `apiVersion` nor `kind` is something else kept beside the manifests."""
    return isinstance(data, dict) and ("apiVersion" in data or "kind" in data)


def ref_of(data: Any) -> str | None:
    """`Kind/name` as far as the document says it, valid or not."""
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        return None
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"{data['kind']}/{name}" if isinstance(name, str) else str(data["kind"])


def validate_document(doc: YamlDocument) -> tuple[Manifest | None, list[ManifestError]]:
    data: dict[str, Any] = doc.data
    ref = ref_of(data)
    errors = [
        ManifestError(
            doc.file,
            d.at.line,
            d.at.column,
            ref,
            render_path(d.loc),
            problem=f"duplicate key (first given at line {d.first.line})",
        )
        for d in doc.duplicates
    ]

    def error(loc: Loc, *, key: bool = False, **parts: Any) -> ManifestError:
        at = doc.locate(loc, key=key)
        return ManifestError(doc.file, at.line, at.column, ref, render_path(loc) or None, **parts)

    kind = data.get("kind")
    if "kind" not in data:
        errors.append(error(("kind",), problem="required field is missing", expected=one_of(sorted(KINDS))))
        return None, errors
    if not isinstance(kind, str) or kind not in KINDS:
        errors.append(error(("kind",), found=render_value(kind), expected=one_of(sorted(KINDS))))
        return None, errors

    if "apiVersion" not in data:
        errors.append(error(("apiVersion",), problem="required field is missing", expected=repr(API_VERSION)))
    elif data["apiVersion"] != API_VERSION:
        errors.append(
            error(("apiVersion",), found=render_value(data["apiVersion"]), expected=repr(API_VERSION))
        )
    # The rest of the document is still checked, so one run shows every problem.
    data = {**data, "apiVersion": API_VERSION}

    cls = KINDS[kind]
    try:
        manifest = cls.model_validate(data)
    except ValidationError as exc:
        for detail in exc.errors():
            errors.append(_translate(doc, ref, cls, detail))
        return None, errors
    return (None if errors else manifest), errors


def _translate(doc: YamlDocument, ref: str | None, cls: type[BaseModel], e: ErrorDetails) -> ManifestError:
    loc: Loc = tuple(e["loc"])
    on_key = bool(loc) and loc[-1] == "[key]"
    if on_key:
        loc = loc[:-1]
    kind = e["type"]
    ctx = e.get("ctx") or {}
    problem: str | None = None
    expected: str | None = None
    show_value = True
    from_validator = False

    if kind == "missing":
        problem = "required field is missing"
        show_value = False
    elif kind == "extra_forbidden":
        on_key, show_value = True, False
        problem = "unknown field"
        allowed = _fields_at(cls, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6) if allowed else []
        if close:
            problem += f"; did you mean '{close[0]}'?"
        elif allowed:
            expected = one_of(allowed)
    elif isinstance(ctx.get("error"), FieldError):
        complaint: FieldError = ctx["error"]
        loc = (*loc, *complaint.at)
        problem, expected = complaint.problem or None, complaint.expected
        show_value = complaint.show_value and expected is not None
        from_validator = True
    elif kind in ("value_error", "assertion_error"):
        problem = str(ctx.get("error", e["msg"]))
        show_value = False
    elif kind == "literal_error":
        expected = one_of(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
    elif kind in _EXPECTED_TYPE:
        expected = _EXPECTED_TYPE[kind]
        if kind == "string_type" and isinstance(e.get("input"), int | float):
            expected += " (put it in quotes)"
    elif kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        expected = f"a number {words} {_number(ctx[name])}"
    elif kind in ("too_short", "string_too_short"):
        expected = _length(kind, int(ctx.get("min_length", 1)), "at least")
    elif kind in ("too_long", "string_too_long"):
        expected = _length(kind, int(ctx.get("max_length", 0)), "at most")
    else:
        problem = e["msg"]

    at = doc.locate(loc, key=on_key)
    found = None
    value = _value_at(doc.data, loc) if show_value else _ABSENT
    # "found a mapping" helps when a mapping is the wrong type, not when a validator faults its content.
    if value is not _ABSENT and not (from_validator and isinstance(value, dict | list)):
        found = render_value(value)
    return ManifestError(
        doc.file, at.line, at.column, ref, render_path(loc) or None, problem, found, expected
    )


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _length(kind: str, n: int, words: str) -> str:
    if kind.startswith("string"):
        return (
            "a non-empty string" if (n, words) == (1, "at least") else f"a string of {words} {n} characters"
        )
    return f"a list of {words} {n} item{'s' if n != 1 else ''}"


_ABSENT = object()


def _value_at(data: Any, loc: Loc) -> Any:
    """The value the author wrote at `loc`, or _ABSENT (a missing field, a key YAML read as a number)."""
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return _ABSENT
    return data


def _fields_at(cls: type[BaseModel], loc: Loc) -> list[str]:
    """The YAML keys the object at `loc` accepts, following the kind's type annotations."""
    tp: Any = cls
    for part in loc:
        tp = _unwrap(tp)
        if _is_model(tp) and isinstance(part, str):
            by_key = {f.alias or n: f for n, f in tp.model_fields.items()}
            if part not in by_key:
                return []
            tp = by_key[part].annotation
        elif get_origin(tp) in (list, tuple, Sequence) and isinstance(part, int):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return []
    tp = _unwrap(tp)
    if not _is_model(tp):
        return []
    return sorted(f.alias or n for n, f in tp.model_fields.items())


def _unwrap(tp: Any) -> Any:
    """Strip `Annotated[...]` and `X | None` down to X."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)
