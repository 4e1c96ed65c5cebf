"""Fixtures of the skills tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# A fixture skill's own unit tests run through `fleetplane skill test`, not as part of this suite.
collect_ignore_glob = ["fixtures/*"]

from skilltools import copy_skill  # noqa: E402


@pytest.fixture
def skill_copy(tmp_path: Path) -> Callable[..., Path]:
    """`skill_copy("summarize")`: a fresh copy of a fixture folder under tmp_path/skills/."""

    def copy(name: str, as_name: str | None = None) -> Path:
        return copy_skill(tmp_path / "skills", name, as_name)

    return copy
