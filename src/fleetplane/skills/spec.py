"""skill.yaml: fleetplane's contract beside SKILL.md — version, entrypoint, schemas, effects, tools,
retry, timeout and guardrails — checked field by field into a `Contract` and an `Entrypoint`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from fleetplane.manifests.errors import ManifestError, render_path
from fleetplane.manifests.expression_templates import compile_condition
from fleetplane.manifests.expressions import ExprError
from fleetplane.manifests.source import read_yaml
from fleetplane.manifests.templates import TemplateError, compile_block_template
from fleetplane.skills.checks import Checker, Loc
from fleetplane.skills.contract import (
    APPROVALS,
    EFFECT_KINDS,
    RETRY_ON,
    TOOL_RULE_NAMES,
    Approval,
    Contract,
    EffectKind,
    Effects,
    RetryPolicy,
    ToolRule,
)
from fleetplane.skills.frontmatter import FrontMatter
from fleetplane.skills.guardrails import check_specs
from fleetplane.skills.schema import check_schema
from fleetplane.skills.semver import VERSION_EXPECTED, is_version

FIELDS = ("version", "entrypoint", "input", "output", "effects", "tools", "retry", "timeout", "guardrails")
TARGET_RE = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)$")
TARGET_EXPECTED = "'module:function', the module under scripts/ (e.g. 'summarize:run')"
DEFAULT_TIMEOUT = 60.0
TEMPLATE_NAMES = frozenset({"input"})  # what a prompt template may read


@dataclass(frozen=True)
class PythonEntry:
    target: str  # "module:function", the module under scripts/


@dataclass(frozen=True)
class PromptEntry:
    template: str
    model: str
    system: str | None


Entrypoint = PythonEntry | PromptEntry


def read_skill_yaml(
    path: Path, display: str, folder: Path, front: FrontMatter | None, problems: list[ManifestError]
) -> tuple[Contract, Entrypoint] | None:
    documents, errors = read_yaml(path, display)
    problems.extend(errors)
    if errors:
        return None
    if len(documents) != 1 or not isinstance(documents[0].data, dict):
        problems.append(ManifestError(display, 1, 1, problem="skill.yaml must hold one mapping"))
        return None
    check = Checker(documents[0], problems)
    before = len(problems)
    check.mapping((), FIELDS, required=("version", "entrypoint", "input", "output", "effects"))

    version = check.value(("version",))
    if check.has(("version",)) and not is_version(version):
        hint = " in quotes" if isinstance(version, int | float) else ""
        check.add(("version",), expected=VERSION_EXPECTED + hint)
    elif front is not None and front.metadata.get("version") != version and is_version(version):
        meta = front.metadata.get("version")
        problems.append(
            ManifestError(display, check.doc.locate(("version",)).line, check.doc.locate(("version",)).column,
                          path="version", problem=f"SKILL.md's metadata.version is "
                          f"{repr(meta) if meta else 'missing'}; it must mirror this version",
                          expected=repr(version))
        )  # fmt: skip

    entry = _entrypoint(check, folder)
    input_schema = _schema(check, ("input",))
    output_schema = _schema(check, ("output",))
    if check.has(("output",)) and isinstance(output_schema, dict):
        kinds = ("object", "string") if isinstance(entry, PromptEntry) else ("object",)
        if output_schema.get("type") not in kinds:
            what = (
                " (a skill returns a mapping, or a prompt skill text)" if len(kinds) > 1 else " (a mapping)"
            )
            check.add(("output", "type"), expected=" or ".join(f"'{k}'" for k in kinds) + what)
    if check.has(("input",)) and isinstance(input_schema, dict) and input_schema.get("type") != "object":
        check.add(("input", "type"), expected="'object' (a skill takes a mapping)")
    effects = _effects(check, folder)
    tools = _tools(check)
    retry = _retry(check, default_attempts=3 if effects and effects.idempotent else 1)
    timeout = check.duration(("timeout",), DEFAULT_TIMEOUT)
    guardrails = check_specs(check, ("guardrails",))
    if len(problems) > before or front is None or entry is None or effects is None:
        return None
    contract = Contract(
        name=front.name,
        version=str(version),
        description=front.description,
        input_schema=cast(dict[str, Any], input_schema),
        output_schema=cast(dict[str, Any], output_schema),
        effects=effects,
        tools=tools,
        retry=retry,
        timeout=timeout,
        guardrails=guardrails,
        model=entry.model if isinstance(entry, PromptEntry) else None,
    )
    return contract, entry


def _schema(check: Checker, loc: Loc) -> dict[str, Any] | None:
    value = check.value(loc)
    if not check.has(loc):
        return None
    if not isinstance(value, dict):
        check.add(loc, expected="a JSON Schema (a mapping)")
        return None
    faults = list(check_schema(value))
    for fault in faults:
        check.add(
            (*loc, *fault.loc), problem=fault.problem, show=False, key=fault.problem.startswith("unsup")
        )
    return None if faults else value


def _entrypoint(check: Checker, folder: Path) -> Entrypoint | None:
    loc: Loc = ("entrypoint",)
    if not check.has(loc):
        return None
    raw = check.mapping(loc, ("python", "prompt"))
    if ("python" in raw) == ("prompt" in raw):
        check.add(loc, problem="give exactly one of python or prompt", show=False)
        return None
    if "python" in raw:
        target = check_target(check, (*loc, "python"), folder)
        return PythonEntry(target) if target else None
    at = (*loc, "prompt")
    check.mapping(at, ("template", "model", "system"), required=("template", "model"))
    template, model = check.string((*at, "template")), check.string((*at, "model"))
    system = check.string((*at, "system"))
    for key, text in (("template", template), ("system", system)):
        if text is not None:
            try:
                compile_block_template(text, TEMPLATE_NAMES)
            except TemplateError as exc:
                _template_error(check, (*at, key), exc)
                return None
            except ExprError as exc:
                check.add((*at, key), problem=f"template {exc}", show=False)
                return None
    return PromptEntry(template, model, system) if template and model else None


def _template_error(check: Checker, loc: Loc, exc: TemplateError) -> None:
    """A template fault at its own line of skill.yaml when the template is a literal block (`|`), whose
    lines are the file's lines; else at the field, with the line within the template."""
    at = check.doc.locate(loc)
    try:
        lines = check.doc.path.read_text("utf-8-sig").split("\n")
    except OSError:
        lines = []
    head = lines[at.line - 1][at.column - 1 :] if at.line <= len(lines) else ""
    target = at.line + exc.line
    if head.startswith("|") and target <= len(lines):
        first = lines[at.line] if at.line < len(lines) else ""
        indent = len(first) - len(first.lstrip(" "))
        check.problems.append(
            ManifestError(
                check.doc.file, target, indent + exc.column, path=render_path(loc), problem=exc.message
            )
        )
        return
    check.add(loc, problem=f"template {exc}", show=False)


def check_target(check: Checker, loc: Loc, folder: Path) -> str | None:
    """A 'module:function' under the folder's scripts/ that exists and defines the function."""
    target = check.string(loc)
    if target is None:
        return None
    match = TARGET_RE.match(target)
    if match is None:
        check.add(loc, expected=TARGET_EXPECTED)
        return None
    module, function = match.groups()
    base = folder / "scripts" / Path(*module.split("."))
    file = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    shown = file.relative_to(folder).as_posix()
    if not file.is_file():
        check.add(loc, problem=f"no module scripts/{module.replace('.', '/')}.py in the skill", show=False)
        return None
    try:
        tree = ast.parse(file.read_bytes(), shown)
    except (SyntaxError, ValueError) as exc:
        check.add(loc, problem=f"{shown} does not compile: {exc}", show=False)
        return None
    if function not in _top_level_names(tree):
        check.add(loc, problem=f"{shown} defines no function '{function}'", show=False)
        return None
    return target


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _effects(check: Checker, folder: Path) -> Effects | None:
    loc: Loc = ("effects",)
    if not check.has(loc):
        return None
    check.mapping(loc, ("kind", "idempotent", "atMostOnce", "reconcile"), required=("kind",))
    kind = check.choice((*loc, "kind"), EFFECT_KINDS, None)
    if kind is None:
        return None
    idempotent = check.boolean((*loc, "idempotent"), kind in ("pure", "read"))
    at_most_once = check.boolean((*loc, "atMostOnce"), False)
    reconcile = None
    if check.has((*loc, "reconcile")):
        if kind in ("pure", "read"):
            check.add(
                (*loc, "reconcile"), problem=f"a {kind} skill has no side effect to reconcile", show=False
            )
        else:
            reconcile = check_target(check, (*loc, "reconcile"), folder)
    return Effects(cast(EffectKind, kind), idempotent, at_most_once, reconcile)


def _tools(check: Checker) -> tuple[ToolRule, ...]:
    rules: list[ToolRule] = []
    seen: set[str] = set()
    for i, _ in enumerate(check.items(("tools",))):
        at: Loc = ("tools", i)
        check.mapping(at, ("name", "approval", "when"), required=("name",))
        name = check.string((*at, "name"))
        approval = check.choice((*at, "approval"), APPROVALS, "never")
        when = None
        if approval == "when":
            when = check.string((*at, "when"))
            if not check.has((*at, "when")):
                check.missing((*at, "when"), 'an expression over args, e.g. "args.amount > 100"')
            elif when is not None:
                try:
                    compile_condition(when, TOOL_RULE_NAMES)
                except ExprError as exc:
                    check.add((*at, "when"), problem=f"not an expression: {exc}")
                    when = None
        elif check.has((*at, "when")):
            check.add((*at, "when"), problem="'when' is read only with approval: when", show=False)
        if name is not None and name in seen:
            check.add((*at, "name"), problem="this tool is listed twice")
        if name is not None and approval is not None:
            seen.add(name)
            rules.append(ToolRule(name, cast(Approval, approval), when))
    return tuple(rules)


def _retry(check: Checker, default_attempts: int) -> RetryPolicy:
    loc: Loc = ("retry",)
    if check.has(loc):
        check.mapping(loc, ("maxAttempts", "backoff", "retryOn"))
    if check.has((*loc, "backoff")):
        check.mapping((*loc, "backoff"), ("base", "cap"))
    attempts = check.integer((*loc, "maxAttempts"), default_attempts, minimum=1)
    base = check.duration((*loc, "backoff", "base"), 1.0)
    cap = check.duration((*loc, "backoff", "cap"), 30.0)
    if cap < base:
        check.add((*loc, "backoff", "cap"), expected=f"a duration of at least the base ({base:g}s)")
    retry_on = ["transient"]
    if check.has((*loc, "retryOn")):
        retry_on = check.strings((*loc, "retryOn"))
        for j, item in enumerate(retry_on):
            if item not in RETRY_ON:
                check.add((*loc, "retryOn", j), expected="one of: " + ", ".join(RETRY_ON))
    return RetryPolicy(attempts, base, cap, tuple(retry_on))
