"""How the skills wing fails: one `SkillError` with a `kind` a caller can branch on.

The kinds split into two families. Verification kinds (`not_found`, `invalid`, `untrusted`, `tampered`,
`revoked`, `unsigned`) mean a skill must not run at all; invocation kinds (`invalid_input`,
`invalid_output`, `timeout`, `failed`, `transient`) describe one attempt. Only `transient` (and
`timeout`, when a skill's retry policy says so) is worth retrying.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fleetplane.manifests.errors import ManifestError

Kind = Literal[
    "not_found",
    "invalid",
    "untrusted",
    "tampered",
    "revoked",
    "unsigned",
    "invalid_input",
    "invalid_output",
    "timeout",
    "failed",
    "transient",
]


class SkillError(Exception):
    """A skill could not be found, verified or run. The message names the skill, the file or the key."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind: Kind = kind
        self.message = message

    def __repr__(self) -> str:
        return f"SkillError({self.kind!r}, {self.message!r})"


class SkillInvalid(SkillError):
    """A skill folder or archive that breaks the format: every problem, each at its file:line."""

    def __init__(self, problems: Sequence[ManifestError]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        first = str(self.problems[0]) if self.problems else "invalid skill"
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        super().__init__("invalid", first + more)


class TransientError(Exception):
    """Raised by a skill's callable for a failure worth retrying (a 503, a dropped connection)."""
