"""Cases from other tools' formats:

- promptfoo test files: a YAML list of tests (or a config with `tests:`), each `{description, vars,
  assert: [...]}`. The input is the `input`/`question`/`prompt`/`query` var, else the only var, else the
  vars mapping; assertions map to this suite's scorer arguments (equals -> exact, contains/icontains ->
  contains, regex -> regex, is-json with a schema -> json-schema, similar/levenshtein -> reference);
  assertions with no counterpart are kept in the case's metadata (`promptfoo_unmapped`), never dropped.
- OpenAI Evals JSONL: `{"input": messages or text, "ideal": text or [texts]}` per line.
- Agent Skills `evals/evals.json`: `{"skill_name", "evals": [{"id", "prompt" | "input",
  "expected_output" | "expected", "files", "expectations", "match"}]}`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fleetplane.evals.cases import (
    Case,
    RawCase,
    listed,
    read_jsonl,
    read_native,
    read_structured,
    validate_cases,
)
from fleetplane.manifests.errors import ManifestError, ManifestErrors

_INPUT_VARS = ("input", "question", "prompt", "query")
_PROMPTFOO_SCORER = {"equals": "exact", "contains": "contains", "icontains": "contains", "regex": "regex"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def _promptfoo_case(item: RawCase, index: int) -> RawCase:
    data = item.data
    if not isinstance(data, dict):
        return item  # validate_cases says "a case is a mapping" at its line
    variables = data.get("vars") or {}
    if not isinstance(variables, dict):
        return RawCase({"id": "?", "input": None}, item.file, item.line, item.column)
    named = [v for v in _INPUT_VARS if v in variables]
    if named:
        value = variables[named[0]]
    elif len(variables) == 1:
        value = next(iter(variables.values()))
    else:
        value = dict(variables)
    case: dict[str, Any] = {
        "id": _slug(str(data.get("description", ""))) or f"test-{index + 1}",
        "input": value,
        "metadata": {"promptfoo_vars": variables} if len(variables) > 1 else {},
    }
    scorer_vars: dict[str, Any] = {}
    unmapped: list[Any] = []
    for check in data.get("assert") or []:
        kind = check.get("type") if isinstance(check, dict) else None
        value = check.get("value") if isinstance(check, dict) else None
        if kind == "equals":
            case["expected"] = value
            scorer_vars["exact"] = value
        elif kind in _PROMPTFOO_SCORER:
            scorer_vars[_PROMPTFOO_SCORER[kind]] = value
        elif kind == "is-json" and isinstance(value, dict):
            scorer_vars["json-schema"] = {"value": value}
        elif kind in ("similar", "levenshtein", "rouge-n", "bleu") and isinstance(value, str):
            case["reference"] = value
        else:
            unmapped.append(check)
    if unmapped:
        case["metadata"]["promptfoo_unmapped"] = unmapped
    case["vars"] = scorer_vars
    return RawCase(case, item.file, item.line, item.column)


def read_promptfoo(path: Path, display: str) -> list[Case]:
    data, doc = read_structured(path, display)
    key = "tests" if isinstance(data, dict) else None
    raw = listed(doc, data, key, "promptfoo tests")
    return validate_cases([_promptfoo_case(item, i) for i, item in enumerate(raw)])


def read_openai_evals(path: Path, display: str) -> list[Case]:
    raw = []
    for item in read_jsonl(path, display):
        data = item.data
        if not isinstance(data, dict) or "input" not in data:
            raise ManifestErrors(
                [
                    ManifestError(
                        display, item.line, 1, problem="expected an OpenAI Evals sample: {input, ideal}"
                    )
                ]
            )
        ideal = data.get("ideal")
        first = ideal[0] if isinstance(ideal, list) and ideal else ideal
        case: dict[str, Any] = {"id": f"line-{item.line}", "input": data["input"], "expected": first}
        if isinstance(ideal, list) and len(ideal) > 1:
            case["metadata"] = {"ideal": ideal}
            case["vars"] = {"contains": {"value": ideal}}
        raw.append(RawCase(case, item.file, item.line))
    return validate_cases(raw)


def read_agent_skills(path: Path, display: str) -> list[Case]:
    data, doc = read_structured(path, display)
    raw = []
    for i, item in enumerate(listed(doc, data, "evals", "evals")):
        entry = item.data
        if not isinstance(entry, dict):
            raw.append(item)
            continue
        case: dict[str, Any] = {
            "id": str(entry.get("id", i + 1)),
            "input": entry.get("input", entry.get("prompt")),
            "expected": entry.get("expected", entry.get("expected_output")),
            "metadata": {
                k: entry[k] for k in ("files", "expectations", "match", "description") if k in entry
            },
        }
        if isinstance(data, dict) and "skill_name" in data:
            case["metadata"]["skill_name"] = data["skill_name"]
        raw.append(RawCase(case, item.file, item.line, item.column))
    return validate_cases(raw)


READERS = {
    "native": read_native,
    "promptfoo": read_promptfoo,
    "openai-evals": read_openai_evals,
    "agent-skills": read_agent_skills,
}


def read_cases(path: Path, display: str, fmt: str = "native") -> list[Case]:
    """The cases of one file in `fmt`; raises `ManifestErrors` at file:line, `FileNotFoundError` if absent."""
    if not path.is_file():
        raise FileNotFoundError(f"{display}: no such case file")
    return READERS[fmt](path, display)
