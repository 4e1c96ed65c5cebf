"""A skill's eval cases: `evals/evals.json` in the Agent Skills shape, and/or `evals/*.yaml`.

    {"threshold": 0.9,
     "evals": [
       {"id": "refund", "input": {"text": "..."}, "expected": {"label": "refund"}},
       {"id": "short", "input": {"text": "..."}, "expected": {"summary": "late"}, "match": "contains"},
       {"id": "tone", "input": {"text": "..."},
        "expectations": ["output.summary | length < 200", "'sorry' in output.summary | lower"]}]}

`expected` is compared with the output exactly (`match: exact`, the default) or as a subset (`match:
contains`: every expected key present, strings contained, lists included); each of `expectations` is a
condition (`fleetplane.manifests.expressions`) over `input` and `output` that must hold. A case scores the
share of its checks that pass. `threshold` (0-1, default 1: every case must pass) is the lowest suite
score the promotion gate accepts; with several files the strictest applies. `skill_name`, when given, must
be the skill's name.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetplane.manifests.errors import ManifestError
from fleetplane.manifests.expression_templates import compile_condition
from fleetplane.manifests.expressions import ExprError
from fleetplane.manifests.source import YamlDocument, read_yaml
from fleetplane.skills.checks import Checker
from fleetplane.skills.schema import validate

_CASE_FIELDS = ("id", "description", "input", "expected", "match", "expectations")
DEFAULT_THRESHOLD = 1.0
EXPECTATION_NAMES = frozenset({"input", "output"})


@dataclass(frozen=True)
class EvalCase:
    id: str
    input: dict[str, Any]
    expected: dict[str, Any] | None
    match: str  # exact | contains
    expectations: tuple[str, ...]
    file: str


@dataclass(frozen=True)
class EvalSuite:
    cases: tuple[EvalCase, ...]
    threshold: float

    def __len__(self) -> int:
        return len(self.cases)


def eval_files(folder: Path) -> list[Path]:
    directory = folder / "evals"
    if not directory.is_dir():
        return []
    return sorted(
        p for p in directory.iterdir()
        if p.is_file() and (p.name == "evals.json" or p.suffix in (".yaml", ".yml"))
    )  # fmt: skip


def read_evals(
    folder: Path, name: str | None, input_schema: dict[str, Any] | None, problems: list[ManifestError]
) -> EvalSuite:
    cases: list[EvalCase] = []
    thresholds: list[float] = []
    seen: dict[str, str] = {}
    for path in eval_files(folder):
        display = f"{folder.name}/evals/{path.name}"
        doc = _read(path, display, problems)
        if doc is None:
            continue
        check = Checker(doc, problems)
        check.mapping((), ("skill_name", "threshold", "evals"), required=("evals",))
        if check.has(("skill_name",)) and name is not None and check.value(("skill_name",)) != name:
            check.add(("skill_name",), expected=f"'{name}' (the skill's name)")
        if check.has(("threshold",)):
            thresholds.append(check.number(("threshold",), DEFAULT_THRESHOLD, low=0.0, high=1.0))
        for i, _ in enumerate(check.items(("evals",))):
            case = _case(check, i, display, input_schema)
            if case is None:
                continue
            if case.id in seen:
                check.add(("evals", i, "id"), problem=f"case id given twice (also in {seen[case.id]})")
                continue
            seen[case.id] = display
            cases.append(case)
    return EvalSuite(tuple(cases), max(thresholds) if thresholds else DEFAULT_THRESHOLD)


def _case(check: Checker, i: int, file: str, input_schema: dict[str, Any] | None) -> EvalCase | None:
    at = ("evals", i)
    before = len(check.problems)
    raw = check.mapping(at, _CASE_FIELDS, required=("id", "input"))
    case_id = check.value((*at, "id"))
    if "id" in raw and (isinstance(case_id, bool) or not isinstance(case_id, str | int) or case_id == ""):
        check.add((*at, "id"), expected="a string or a number")
    if "input" in raw:
        if not isinstance(raw["input"], dict):
            check.add((*at, "input"), expected="a mapping: the skill's input")
        elif input_schema is not None:
            for violation in validate(raw["input"], input_schema)[:1]:
                check.add((*at, "input", *violation.loc), problem=violation.render("input"), show=False)
    if "expected" not in raw and "expectations" not in raw and raw:
        check.add(at, problem="a case needs expected or expectations", show=False)
    if "expected" in raw and not isinstance(raw["expected"], dict):
        check.add((*at, "expected"), expected="a mapping: (part of) the skill's output")
    match = check.choice((*at, "match"), ("exact", "contains"), "exact")
    expectations = check.strings((*at, "expectations"))
    for j, text in enumerate(expectations):
        try:
            compile_condition(text, EXPECTATION_NAMES)
        except ExprError as exc:
            check.add((*at, "expectations", j), problem=f"not an expression: {exc}")
    if len(check.problems) > before:
        return None
    return EvalCase(
        str(case_id), raw["input"], raw.get("expected"), match or "exact", tuple(expectations), file
    )


def _read(path: Path, display: str, problems: list[ManifestError]) -> YamlDocument | None:
    documents, errors = read_yaml(path, display)
    if errors and path.suffix == ".json":
        documents, errors = _read_tabbed_json(path, display, errors)
    problems.extend(errors)
    if errors:
        return None
    if len(documents) != 1 or not isinstance(documents[0].data, dict):
        problems.append(ManifestError(display, 1, 1, problem="expected one mapping with an 'evals' list"))
        return None
    return documents[0]


def _read_tabbed_json(
    path: Path, display: str, yaml_errors: list[ManifestError]
) -> tuple[list[YamlDocument], list[ManifestError]]:
    """JSON indented with tabs is valid JSON but not valid YAML. Tabs outside strings are only ever
    whitespace in valid JSON, so a copy with each tab made a space reads the same, at the same places."""
    text = path.read_text("utf-8-sig")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [ManifestError(display, exc.lineno, exc.colno, problem=f"invalid JSON: {exc.msg}")]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        copy.write_text(text.replace("\t", " "), "utf-8")
        documents, errors = read_yaml(copy, display)
    for doc in documents:
        doc.path = path
    return documents, errors or []
