"""A skill folder read and checked as a whole: SKILL.md, skill.yaml, evals/ and tests/.

    summarize/
      SKILL.md          the Agent Skills front matter and instructions
      skill.yaml        fleetplane's contract
      scripts/          the Python entrypoint and reconcile hook, if any
      evals/            evals.json and/or *.yaml: cases the promotion gate scores
      tests/            unit tests, run by `fleetplane skill test`
      skill.dsse.json   the signature, written by `fleetplane skill sign`

`files` lists what is packed: every regular file, in sorted order, except hidden files and folders and
Python's caches. A symbolic link is refused: packed, it would carry whatever it points to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fleetplane.manifests.errors import ManifestError
from fleetplane.skills.contract import Contract
from fleetplane.skills.errors import SkillError, SkillInvalid
from fleetplane.skills.evalcases import EvalSuite, read_evals
from fleetplane.skills.frontmatter import FrontMatter, read_skill_md
from fleetplane.skills.spec import Entrypoint, read_skill_yaml

SIGNATURE_FILE = "skill.dsse.json"
_SKIPPED_DIRS = {"__pycache__"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class SkillFolder:
    path: Path
    front: FrontMatter
    contract: Contract
    entrypoint: Entrypoint
    evals: EvalSuite
    tests: tuple[str, ...]  # test files under tests/, relative to the folder

    @property
    def name(self) -> str:
        return self.contract.name

    @property
    def version(self) -> str:
        return self.contract.version


def list_files(folder: Path) -> list[str]:
    """The folder's files as '/'-separated paths relative to it, sorted, as they are packed and signed."""
    found: list[str] = []
    for here, dirs, names in os.walk(folder, followlinks=False):
        base = Path(here)
        for d in list(dirs):
            if (base / d).is_symlink():
                raise SkillError("invalid", f"{_rel(folder, base / d)}: a symbolic link cannot be packed")
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in names:
            path = base / name
            if name.startswith(".") or name.endswith(_SKIPPED_SUFFIXES):
                continue
            if path.is_symlink() or not path.is_file():
                raise SkillError("invalid", f"{_rel(folder, path)}: only regular files can be packed")
            found.append(path.relative_to(folder).as_posix())
    return sorted(found)


def _check_allowed_tools(
    front: FrontMatter, contract: Contract, display: str, problems: list[ManifestError]
) -> None:
    """Every tool SKILL.md allows must be declared in skill.yaml, where its approval rule is: a tool
    allowed with no rule would be called with no governance."""
    declared = {t.name for t in contract.tools}
    missing = [t for t in (front.allowed_tools or "").split() if t not in declared]
    if missing:
        line, column = front.allowed_tools_at
        problems.append(
            ManifestError(
                display, line, column, path="allowed-tools",
                problem=f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not declared in "
                "skill.yaml's tools", expected="each allowed tool listed under tools with its approval rule",
            )
        )  # fmt: skip


def _rel(folder: Path, path: Path) -> str:
    return f"{folder.name}/{path.relative_to(folder).as_posix()}"


def read_folder(path: Path | str) -> SkillFolder:
    """The checked skill folder at `path`; `SkillInvalid` with every problem, or `SkillError` not_found."""
    folder = Path(path)
    if not folder.is_dir():
        raise SkillError("not_found", f"no skill folder at {folder}")
    folder = folder.resolve()
    name = folder.name
    problems: list[ManifestError] = []
    front = None
    for required in ("SKILL.md", "skill.yaml"):
        if not (folder / required).is_file():
            problems.append(ManifestError(f"{name}/{required}", 1, 1, problem="the file is missing"))
    if (folder / "SKILL.md").is_file():
        front = read_skill_md(folder / "SKILL.md", f"{name}/SKILL.md", name, problems)
    spec = None
    if (folder / "skill.yaml").is_file():
        spec = read_skill_yaml(folder / "skill.yaml", f"{name}/skill.yaml", folder, front, problems)
    contract = spec[0] if spec else None
    if front is not None and contract is not None and front.allowed_tools:
        _check_allowed_tools(front, contract, f"{name}/SKILL.md", problems)
    evals = read_evals(folder, front.name if front else None, contract.input_schema if contract else None,
                       problems)  # fmt: skip
    try:
        files = list_files(folder)
    except SkillError as exc:
        problems.append(ManifestError(f"{name}", 1, 1, problem=exc.message))
        files = []
    if problems or spec is None or front is None:
        order = {f"{name}/SKILL.md": 0, f"{name}/skill.yaml": 1}
        problems.sort(key=lambda e: (order.get(e.file, 2), e.file, e.line, e.column))
        raise SkillInvalid(problems)
    tests = tuple(f for f in files if f.startswith("tests/") and Path(f).name.startswith("test_"))
    return SkillFolder(folder, front, spec[0], spec[1], evals, tests)
