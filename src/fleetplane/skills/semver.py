"""Semantic versions and npm/poetry-style constraints: `^1.2`, `~1.2.3`, `>=1.0 <2.0`, `1.x`, `1.2 - 1.4`,
alternatives with `||`, `*` for any.

A constraint is a union of ranges; a range is a conjunction of primitive comparators (`>=`, `>`, `<=`, `<`,
`=`) after the sugar is expanded. As in npm, a pre-release (`2.0.0-rc.1`) satisfies a range only when one
of the range's comparators names a pre-release of the same major.minor.patch: `^2.0.0-rc.0` admits
`2.0.0-rc.1`, `>=1.0` does not, so a pre-release never slips into a plain constraint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
# A partial version in a constraint: 1, 1.2, 1.2.3, 1.x, 1.2.*, with an optional pre-release.
_PARTIAL = re.compile(
    r"^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)
_COMPARATOR = re.compile(r"^(\^|~>?|>=|<=|>|<|==?)?\s*(.+)$")

VERSION_EXPECTED = "a semantic version such as 1.2.0"
CONSTRAINT_EXPECTED = "a version constraint such as ^1.2, ~1.2.3, >=1.0 <2.0, 1.x or *"


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"{text!r} is not {VERSION_EXPECTED}")
        major, minor, patch, pre, build = match.groups()
        return cls(int(major), int(minor), int(patch), _identifiers(pre), build or "")

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple[object, ...]:
        # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric ones.
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease)
        return (*self.release, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        # Build metadata does not take part in precedence (semver 2.0.0, item 10).
        return isinstance(other, Version) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(p) for p in self.prerelease)
        if self.build:
            text += "+" + self.build
        return text


def _identifiers(pre: str | None) -> tuple[int | str, ...]:
    if not pre:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in pre.split("."))


def is_version(text: object) -> bool:
    return isinstance(text, str) and _VERSION.match(text.strip()) is not None


@dataclass(frozen=True)
class _Comparator:
    op: str  # one of >=, >, <=, <, =
    version: Version

    def test(self, v: Version) -> bool:
        if self.op == "=":
            return v == self.version
        if self.op == ">=":
            return v >= self.version
        if self.op == ">":
            return v > self.version
        if self.op == "<=":
            return v <= self.version
        return v < self.version


@dataclass(frozen=True)
class Constraint:
    text: str
    ranges: tuple[tuple[_Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not {CONSTRAINT_EXPECTED}")
        ranges = tuple(_range(part.strip(), text) for part in text.split("||"))
        return cls(text.strip() or "*", ranges)

    def allows(self, version: Version | str) -> bool:
        v = Version.parse(version) if isinstance(version, str) else version
        return any(_range_allows(r, v) for r in self.ranges)

    def best(self, versions: Iterable[Version | str]) -> Version | None:
        """The highest version the constraint allows, or None."""
        allowed = [v for v in (Version.parse(x) if isinstance(x, str) else x for x in versions)]
        allowed = [v for v in allowed if self.allows(v)]
        return max(allowed) if allowed else None

    def __str__(self) -> str:
        return self.text


def _range_allows(comparators: tuple[_Comparator, ...], v: Version) -> bool:
    if not all(c.test(v) for c in comparators):
        return False
    if v.prerelease:
        return any(c.version.prerelease and c.version.release == v.release for c in comparators)
    return True


def _range(text: str, whole: str) -> tuple[_Comparator, ...]:
    if text in ("", "*", "x", "X"):
        return (_Comparator(">=", Version(0, 0, 0)),)
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", text)
    if hyphen:
        low, high = (_partial(p, whole) for p in hyphen.groups())
        return (*_expand(">=", low), *_expand("<=", high))
    tokens = re.findall(r"(?:\^|~>?|>=|<=|>|<|==?)?\s*[^\s,]+", text.replace(",", " "))
    comparators: list[_Comparator] = []
    for token in tokens:
        match = _COMPARATOR.match(token.strip())
        if match is None:
            raise ValueError(f"{whole!r} is not {CONSTRAINT_EXPECTED}")
        op, rest = match.group(1) or "=", match.group(2)
        comparators.extend(_expand(op, _partial(rest, whole)))
    return tuple(comparators)


@dataclass(frozen=True)
class _Partial:
    parts: tuple[int | None, int | None, int | None]  # None: a wildcard or left out
    prerelease: tuple[int | str, ...]

    @property
    def given(self) -> int:
        """How many leading parts were given: 1.2 -> 2, 1.x -> 1, * -> 0."""
        count = 0
        for part in self.parts:
            if part is None:
                break
            count += 1
        return count

    def floor(self) -> Version:
        major, minor, patch = (p or 0 for p in self.parts)
        return Version(major, minor, patch, self.prerelease if self.given == 3 else ())


def _partial(text: str, whole: str) -> _Partial:
    match = _PARTIAL.match(text.strip())
    if match is None:
        raise ValueError(f"{whole!r} is not {CONSTRAINT_EXPECTED}")
    raw = match.groups()[:3]
    parts = tuple(None if p is None or p in "xX*" else int(p) for p in raw)
    return _Partial((parts[0], parts[1], parts[2]), _identifiers(match.group(4)))


def _bump(p: _Partial, index: int) -> Version:
    """The first version past the given parts, bumping the part at `index` (0 = major)."""
    major, minor, _patch = (x or 0 for x in p.parts)
    if index == 0:
        return Version(major + 1, 0, 0, (0,))
    if index == 1:
        return Version(major, minor + 1, 0, (0,))
    return Version(major, minor, (p.parts[2] or 0) + 1, (0,))


def _expand(op: str, p: _Partial) -> list[_Comparator]:
    # Upper bounds are `< X.Y.Z-0`, the lowest possible version of X.Y.Z, so no pre-release of the
    # excluded release is admitted by accident.
    floor, given = p.floor(), p.given
    if op in ("=", "=="):
        if given == 3:
            return [_Comparator("=", floor)]
        if given == 0:
            return [_Comparator(">=", Version(0, 0, 0))]
        return [_Comparator(">=", floor), _Comparator("<", _bump(p, given - 1))]
    if op == "^":
        # The left-most non-zero part is fixed: ^1.2.3 < 2.0.0, ^0.2.3 < 0.3.0, ^0.0.3 < 0.0.4.
        major, minor, _ = p.parts
        if given == 0:
            return [_Comparator(">=", Version(0, 0, 0))]
        if major != 0 or given == 1:
            index = 0
        elif minor != 0 or given == 2:
            index = 1
        else:
            index = 2
        return [_Comparator(">=", floor), _Comparator("<", _bump(p, index))]
    if op in ("~", "~>"):
        # ~1.2.3 and ~1.2 stay within 1.2; ~1 stays within 1.
        if given == 0:
            return [_Comparator(">=", Version(0, 0, 0))]
        return [_Comparator(">=", floor), _Comparator("<", _bump(p, 0 if given == 1 else 1))]
    if op == ">=":
        return [_Comparator(">=", floor)]
    if op == "<":
        return [_Comparator("<", floor)]
    if op == ">":
        return [_Comparator(">", floor) if given == 3 else _Comparator(">=", _bump(p, max(given - 1, 0)))]
    # <=: up to and including every version the partial covers.
    if given == 3 or given == 0:
        return [_Comparator("<=", floor)] if given == 3 else [_Comparator(">=", Version(0, 0, 0))]
    return [_Comparator("<", _bump(p, given - 1))]
