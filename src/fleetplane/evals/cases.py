"""A suite's cases, from the suite itself or from case files, each remembering where it was written.

A native case file is a YAML list of cases (or a mapping with a `cases:` list) or JSONL, one case per
line, with the fields of `EvalCase` (id, input, expected, reference, metadata, fixture, vars). Other
formats are read by `importers`. Every problem is a `ManifestError` at the file:line of the bad case.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleetplane.manifests.errors import ManifestError, ManifestErrors, render_path
from fleetplane.manifests.evalsuite import EvalCase
from fleetplane.manifests.source import YamlDocument, read_yaml


@dataclass(frozen=True)
class Case:
    id: str
    input: Any
    expected: Any = None
    reference: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    fixture: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # file:line where the case is written


@dataclass(frozen=True)
class RawCase:
    """A case as read, before validation: its data and where it is."""

    data: Any
    file: str
    line: int
    column: int = 1


def from_spec(case: EvalCase, source: str) -> Case:
    return Case(
        case.id,
        case.input,
        case.expected,
        case.reference,
        dict(case.metadata),
        case.fixture,
        dict(case.vars),
        source,
    )


def validate_cases(raw: Sequence[RawCase]) -> list[Case]:
    """Validate raw cases as `EvalCase`s; raises `ManifestErrors` naming every bad one at its line."""
    errors: list[ManifestError] = []
    cases: list[Case] = []
    for item in raw:
        if not isinstance(item.data, dict):
            errors.append(ManifestError(item.file, item.line, item.column, problem="a case is a mapping"))
            continue
        try:
            spec = EvalCase.model_validate(item.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            errors.append(
                ManifestError(
                    item.file,
                    item.line,
                    item.column,
                    path=render_path(first["loc"]) or None,
                    problem=first["msg"].removeprefix("Value error, "),
                )
            )
            continue
        cases.append(from_spec(spec, f"{item.file}:{item.line}"))
    if errors:
        raise ManifestErrors(errors)
    return cases


def read_jsonl(path: Path, display: str) -> list[RawCase]:
    """One JSON value per non-blank line; a line that is not JSON is an error at its line and column."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestErrors([ManifestError(display, 1, 1, problem=f"cannot read the file: {exc}")]) from exc
    raw: list[RawCase] = []
    errors: list[ManifestError] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw.append(RawCase(json.loads(line), display, number))
        except json.JSONDecodeError as exc:
            errors.append(ManifestError(display, number, exc.colno, problem=f"not JSON: {exc.msg}"))
    if errors:
        raise ManifestErrors(errors)
    return raw


def read_structured(path: Path, display: str) -> tuple[Any, YamlDocument]:
    """A YAML or JSON file (JSON read as YAML, so every value keeps its line)."""
    docs, errors = read_yaml(path, display)
    if errors:
        raise ManifestErrors(errors)
    if len(docs) != 1:
        raise ManifestErrors(
            [ManifestError(display, 1, 1, problem=f"expected one document, found {len(docs)}")]
        )
    return docs[0].data, docs[0]


def listed(doc: YamlDocument, data: Any, key: str | None, what: str) -> list[RawCase]:
    """The entries of a list (at `key`, or the whole document) with each entry's line."""
    items = data.get(key) if key is not None and isinstance(data, dict) else data
    if not isinstance(items, list):
        where = doc.locate((key,) if key and isinstance(data, dict) and key in data else ())
        expected = f"a list of {what}" + (f" (or a mapping with a '{key}' list)" if key else "")
        raise ManifestErrors(
            [ManifestError(doc.file, where.line, where.column, problem=f"expected {expected}")]
        )
    prefix: tuple[str, ...] = (key,) if key is not None and isinstance(data, dict) else ()
    out = []
    for i, item in enumerate(items):
        at = doc.locate((*prefix, i))
        out.append(RawCase(item, doc.file, at.line, at.column))
    return out


def read_native(path: Path, display: str) -> list[Case]:
    if path.suffix == ".jsonl":
        return validate_cases(read_jsonl(path, display))
    data, doc = read_structured(path, display)
    return validate_cases(listed(doc, data, "cases", "cases"))


Reader = Callable[[Path, str], list[Case]]


def check_unique(cases: Sequence[Case]) -> None:
    seen: dict[str, Case] = {}
    errors: list[ManifestError] = []
    for case in cases:
        if case.id in seen:
            file, _, line = case.source.rpartition(":")
            errors.append(
                ManifestError(
                    file or case.source,
                    int(line) if line.isdigit() else 1,
                    1,
                    path="id",
                    problem=f"case id {case.id!r} is used twice; first at {seen[case.id].source}",
                )
            )
        else:
            seen[case.id] = case
    if errors:
        raise ManifestErrors(errors)
