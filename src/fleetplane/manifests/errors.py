"""What the loader says about a bad document: one `ManifestError` per problem, all of them at once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ManifestError:
    """One problem, at the place in a file where it is.

    Rendered as `file:line:column: Kind/name: field.path: found X; expected Y`; the parts that are not
    known (a syntax error has no document yet, a missing field has no value) are left out.
    """

    file: str
    line: int
    column: int
    ref: str | None = None  # "Kind/name" of the document, when the document says so
    path: str | None = None  # the field in YAML terms: spec.deployments[1].weight
    problem: str | None = None  # what is wrong, when "found/expected" alone does not say it
    found: str | None = None  # the value found, rendered as in YAML
    expected: str | None = None  # what a good value looks like

    @property
    def message(self) -> str:
        """Everything after `file:line:column: `."""
        parts = [p for p in (self.ref, self.path) if p]
        details = []
        if self.problem:
            details.append(self.problem)
        if self.found is not None:
            details.append(f"found {self.found}")
        if self.expected:
            details.append(f"expected {self.expected}")
        parts.append("; ".join(details) or "invalid")
        return ": ".join(parts)

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class ManifestErrors(Exception):
    """Every problem found in a set of manifests; nothing in them may be applied."""

    def __init__(self, errors: Iterable[ManifestError]) -> None:
        self.errors: list[ManifestError] = list(errors)
        count = len(self.errors)
        super().__init__(f"{count} error{'s' if count != 1 else ''} in manifests")

    def by_file(self) -> dict[str, list[ManifestError]]:
        """Errors grouped by file, in the order the files were read."""
        groups: dict[str, list[ManifestError]] = {}
        for error in self.errors:
            groups.setdefault(error.file, []).append(error)
        return groups

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def render_value(value: object) -> str:
    """A value as a YAML author would recognise it: 'text', 42, true, null, a mapping, a list."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown)
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list | tuple):
        return "a list" if value else "an empty list"
    return repr(str(value))


def render_path(loc: Sequence[str | int]) -> str:
    """('spec', 'deployments', 1, 'weight') -> spec.deployments[1].weight"""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _plain(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _plain(key: str) -> bool:
    return bool(key) and all(c.isalnum() or c in "-_" for c in key)


def one_of(names: Iterable[str]) -> str:
    return "one of: " + ", ".join(names)
