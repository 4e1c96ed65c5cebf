"""Checking a YAML (or JSON) document field by field, each complaint at its file:line:column.

The manifests loader's reader (`manifests.source`) keeps the node tree beside the data, so a field path
turns back into a place; its `ManifestError` renders `file:line:column: field: problem; found X;
expected Y`. A skill file is checked by hand rather than by pydantic: its fields mean different things
depending on each other (an `entrypoint` is python or prompt; a guardrail's keys depend on its type),
and each rule wants its own sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fleetplane.manifests.errors import ManifestError, one_of, render_path, render_value
from fleetplane.manifests.fields import parse_duration
from fleetplane.manifests.source import YamlDocument

Loc = tuple[str | int, ...]
_ABSENT = object()


class Checker:
    """Collects the problems of one document."""

    def __init__(self, doc: YamlDocument, problems: list[ManifestError]) -> None:
        self.doc = doc
        self.problems = problems
        for dup in doc.duplicates:
            self.problems.append(
                ManifestError(
                    doc.file,
                    dup.at.line,
                    dup.at.column,
                    path=render_path(dup.loc),
                    problem=f"duplicate key (first given at line {dup.first.line})",
                )
            )

    def value(self, loc: Loc) -> Any:
        data: Any = self.doc.data
        for part in loc:
            try:
                data = data[part]
            except (KeyError, IndexError, TypeError):
                return _ABSENT
        return data

    def has(self, loc: Loc) -> bool:
        return self.value(loc) is not _ABSENT

    def add(
        self,
        loc: Loc,
        *,
        problem: str | None = None,
        expected: str | None = None,
        show: bool = True,
        key: bool = False,
    ) -> None:
        at = self.doc.locate(loc, key=key)
        value = self.value(loc)
        found = render_value(value) if show and value is not _ABSENT else None
        self.problems.append(
            ManifestError(self.doc.file, at.line, at.column, None, render_path(loc) or None, problem, found,
                          expected)
        )  # fmt: skip

    def missing(self, loc: Loc, expected: str | None = None) -> None:
        self.add(loc, problem="required field is missing", expected=expected, show=False)

    def mapping(self, loc: Loc, allowed: Iterable[str], *, required: Iterable[str] = ()) -> dict[str, Any]:
        """The mapping at `loc` (empty when it is not one), with unknown and missing keys reported."""
        value = self.value(loc)
        if not isinstance(value, Mapping):
            self.add(loc, expected="a mapping")
            return {}
        names = list(allowed)
        for name in value:
            if name not in names:
                self.add((*loc, name), problem="unknown field", expected=one_of(names), show=False, key=True)
        for name in required:
            if name not in value:
                self.missing((*loc, name))
        return dict(value)

    def string(self, loc: Loc, *, required: bool = False, max_length: int | None = None) -> str | None:
        value = self.value(loc)
        if value is _ABSENT:
            if required:
                self.missing(loc, "a string")
            return None
        if not isinstance(value, str):
            hint = (
                " (put it in quotes)"
                if isinstance(value, int | float) and not isinstance(value, bool)
                else ""
            )
            self.add(loc, expected="a string" + hint)
            return None
        if not value.strip():
            self.add(loc, expected="a non-empty string")
            return None
        if max_length is not None and len(value) > max_length:
            self.add(loc, problem=f"{len(value)} characters", expected=f"at most {max_length} characters",
                     show=False)  # fmt: skip
            return None
        return value

    def boolean(self, loc: Loc, default: bool) -> bool:
        value = self.value(loc)
        if value is _ABSENT:
            return default
        if not isinstance(value, bool):
            self.add(loc, expected="true or false")
            return default
        return value

    def integer(self, loc: Loc, default: int, *, minimum: int) -> int:
        value = self.value(loc)
        if value is _ABSENT:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.add(loc, expected=f"a whole number of at least {minimum}")
            return default
        return value

    def number(self, loc: Loc, default: float, *, low: float, high: float) -> float:
        value = self.value(loc)
        if value is _ABSENT:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            self.add(loc, expected=f"a number from {low:g} to {high:g}")
            return default
        return float(value)

    def duration(self, loc: Loc, default: float) -> float:
        value = self.value(loc)
        if value is _ABSENT:
            return default
        try:
            seconds = float(parse_duration(value))
        except ValueError:
            seconds = -1.0
        if seconds <= 0:
            self.add(
                loc, expected="a duration greater than 0: seconds, or a string like '500ms', '30s', '5m'"
            )
            return default
        return seconds

    def choice(self, loc: Loc, options: Iterable[str], default: str | None) -> str | None:
        names = list(options)
        value = self.value(loc)
        if value is _ABSENT:
            if default is None:
                self.missing(loc, one_of(names))
            return default
        if value not in names:
            self.add(loc, expected=one_of(names))
            return default
        return str(value)

    def strings(self, loc: Loc) -> list[str]:
        value = self.value(loc)
        if value is _ABSENT:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(loc, expected="a list of strings")
            return []
        return list(value)

    def items(self, loc: Loc) -> list[Any]:
        value = self.value(loc)
        if value is _ABSENT:
            return []
        if not isinstance(value, list):
            self.add(loc, expected="a list")
            return []
        return list(value)
