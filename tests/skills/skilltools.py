"""Helpers the skills tests share (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def copy_skill(parent: Path, name: str, as_name: str | None = None) -> Path:
    """A fresh copy of a fixture folder under `parent`, so a test can edit it without touching the tree."""
    target = parent / (as_name or name)
    shutil.copytree(FIXTURES / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def write_trust(
    path: Path, keys: list[tuple[str, str, list[str]]], revoked: tuple[str, ...] | list[str] = ()
) -> Path:
    """A trust file: (name, public key line, skill patterns) per key; `revoked` key ids or lines."""
    lines = ["keys:"]
    for name, public, skills in keys:
        lines += [
            f"  - name: {name}",
            f'    key: "{public}"',
            "    skills: [" + ", ".join(f'"{s}"' for s in skills) + "]",
        ]
    if revoked:
        lines.append("revoked:")
        for key in revoked:
            lines += [f'  - key: "{key}"', "    reason: laptop stolen"]
    path.write_text("\n".join(lines) + "\n")
    return path


def version_of(parent: Path, name: str, version: str, *, replace: tuple[str, str] | None = None) -> Path:
    """A copy of fixture `name` as `version` (under parent/<version>/<name>), with one edit in its script."""
    folder = copy_skill(parent / version, name)
    old = (folder / "skill.yaml").read_text().split("\n", 1)[0].split('"')[1]
    edit(folder / "skill.yaml", f'version: "{old}"', f'version: "{version}"')
    edit(folder / "SKILL.md", f'version: "{old}"', f'version: "{version}"')
    if replace is not None:
        script = next((folder / "scripts").glob("*.py"))
        for path in (folder / "scripts").glob("*.py"):
            if replace[0] in path.read_text():
                script = path
        edit(script, *replace)
    return folder
