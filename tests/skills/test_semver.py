"""Semantic versions and npm-style constraints, as `resolve`, `lock` and `outdated` read them."""

from __future__ import annotations

import pytest

from fleetplane.skills.semver import Constraint, Version


def test_precedence() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "2.0.0"]
    assert sorted(ordered, key=Version.parse) == ordered
    assert Version.parse("1.0.0+build.5") == Version.parse("1.0.0")
    assert str(Version.parse("v1.2.3-rc.1+b7")) == "1.2.3-rc.1+b7"


@pytest.mark.parametrize(
    ("constraint", "allowed", "refused"),
    [
        ("^1.2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0", "2.0.0-rc.1"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
        (">=1.0 <2.0", ["1.0.0", "1.99.0"], ["2.0.0", "0.9.0"]),
        ("1.x", ["1.0.0", "1.5.2"], ["2.0.0"]),
        ("1.2 - 1.4", ["1.2.0", "1.4.9"], ["1.5.0"]),
        ("^1.0 || ^3.0", ["1.1.0", "3.2.0"], ["2.0.0"]),
        ("*", ["0.0.1", "9.0.0"], ["1.0.0-rc.1"]),
        ("^2.0.0-rc.0", ["2.0.0-rc.1", "2.1.0"], ["2.0.1-rc.1", "3.0.0"]),
    ],
)
def test_constraints(constraint: str, allowed: list[str], refused: list[str]) -> None:
    parsed = Constraint.parse(constraint)
    assert [v for v in allowed if parsed.allows(v)] == allowed
    assert [v for v in refused if parsed.allows(v)] == []


def test_best_and_bad_input() -> None:
    assert str(Constraint.parse("^1").best(["0.9.0", "1.0.0", "1.4.0", "2.0.0"])) == "1.4.0"
    assert Constraint.parse("^3").best(["1.0.0"]) is None
    with pytest.raises(ValueError) as caught:
        Constraint.parse("^one")
    assert (
        str(caught.value) == "'^one' is not a version constraint such as ^1.2, ~1.2.3, >=1.0 <2.0, 1.x or *"
    )
    with pytest.raises(ValueError) as caught:
        Version.parse("1.2")
    assert str(caught.value) == "'1.2' is not a semantic version such as 1.2.0"
