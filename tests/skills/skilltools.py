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
