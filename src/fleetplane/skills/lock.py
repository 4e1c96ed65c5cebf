"""Lock files: exact versions and digests pinned for skills referred to by name and constraint.

    {"lockVersion": 1,
     "skills": {"summarize": {"constraint": "^1.0", "version": "1.0.0", "digest": "sha256:…"}}}

A pipeline names `summarize@^1.0`; its lock says which archive that is, so every run (and every resume)
loads the same bytes until the lock is updated on purpose (`fleetplane skill lock`, proposed by
`fleetplane skill outdated`). The lock's own digest (sha256 of its canonical JSON) is what a run pins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fleetplane.manifests.errors import ManifestError
from fleetplane.manifests.source import read_yaml
from fleetplane.skills.checks import Checker
from fleetplane.skills.contract import SkillRef
from fleetplane.skills.errors import SkillError, SkillInvalid
from fleetplane.skills.semver import CONSTRAINT_EXPECTED, VERSION_EXPECTED, Constraint, is_version

LOCK_VERSION = 1
DEFAULT_FILE = "skills.lock"


@dataclass(frozen=True)
class LockEntry:
    constraint: str
    ref: SkillRef


@dataclass(frozen=True)
class SkillLock:
    entries: Mapping[str, LockEntry]

    @classmethod
    def of(cls, entries: Mapping[str, tuple[str, SkillRef]]) -> SkillLock:
        return cls({name: LockEntry(c, ref) for name, (c, ref) in sorted(entries.items())})

    def get(self, name: str) -> SkillRef | None:
        entry = self.entries.get(name)
        return entry.ref if entry else None

    def fits(self, name: str, constraint: str) -> bool:
        """Whether the pin for `name` was made for this constraint (and so may be kept)."""
        entry = self.entries.get(name)
        return entry is not None and entry.constraint == constraint

    def to_json(self) -> dict[str, Any]:
        return {
            "lockVersion": LOCK_VERSION,
            "skills": {
                name: {"constraint": e.constraint, "version": e.ref.version, "digest": e.ref.digest}
                for name, e in sorted(self.entries.items())
            },
        }

    def dumps(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"

    @property
    def digest(self) -> str:
        return (
            "sha256:" + hashlib.sha256(orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS)).hexdigest()
        )

    def write(self, path: Path | str) -> None:
        Path(path).write_bytes(self.dumps())

    @classmethod
    def load(cls, path: Path | str) -> SkillLock:
        """The lock file at `path`; `SkillInvalid` with every problem at its line."""
        path = Path(path)
        if not path.is_file():
            raise SkillError("not_found", f"no lock file at {path}")
        documents, errors = read_yaml(path, str(path))
        problems: list[ManifestError] = list(errors)
        if not errors and (len(documents) != 1 or not isinstance(documents[0].data, dict)):
            problems.append(
                ManifestError(
                    str(path), 1, 1, problem="a lock file is one mapping with lockVersion and skills"
                )
            )
        if problems:
            raise SkillInvalid(problems)
        check = Checker(documents[0], problems)
        check.mapping((), ("lockVersion", "skills"), required=("lockVersion", "skills"))
        if check.has(("lockVersion",)) and check.value(("lockVersion",)) != LOCK_VERSION:
            check.add(("lockVersion",), expected=str(LOCK_VERSION))
        entries: dict[str, LockEntry] = {}
        skills = check.mapping(("skills",), ()) if check.has(("skills",)) else {}
        problems[:] = [
            p
            for p in problems
            if p.problem != "unknown field" or not p.path or not p.path.startswith("skills")
        ]
        for name in skills:
            at = ("skills", name)
            check.mapping(
                at, ("constraint", "version", "digest"), required=("constraint", "version", "digest")
            )
            constraint, version = check.string((*at, "constraint")), check.string((*at, "version"))
            digest = check.string((*at, "digest"))
            if constraint is not None:
                try:
                    Constraint.parse(constraint)
                except ValueError:
                    check.add((*at, "constraint"), expected=CONSTRAINT_EXPECTED)
            if version is not None and not is_version(version):
                check.add((*at, "version"), expected=VERSION_EXPECTED)
            if digest is not None and not (digest.startswith("sha256:") and len(digest) == 71):
                check.add((*at, "digest"), expected="sha256:<64 hex digits>")
            if constraint and version and digest:
                entries[str(name)] = LockEntry(constraint, SkillRef(str(name), version, digest))
        if problems:
            raise SkillInvalid(problems)
        return cls(entries)

    @staticmethod
    def pin_of(lock: Any, name: str) -> SkillRef | None:
        """The pin for `name` in a `SkillLock`, or in a mapping of name -> {version, digest} (a run's lock
        as the pipelines wing stores it) or name -> a ref; None when there is no lock or no pin."""
        if lock is None:
            return None
        if isinstance(lock, SkillLock):
            return lock.get(name)
        if isinstance(lock, Mapping):
            pin = lock.get(name)
            if pin is None:
                return None
            if isinstance(pin, SkillRef):
                return pin
            if isinstance(pin, Mapping):
                return SkillRef(name, str(pin["version"]), str(pin["digest"]))
            return SkillRef(name, str(pin.version), str(pin.digest))
        raise SkillError(
            "invalid", f"a lock is a SkillLock or a mapping of skill names to pins, not {type(lock).__name__}"
        )
