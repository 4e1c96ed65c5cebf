"""How a worker's turn on a run ends, other than by finishing: the exceptions the engine settles on.

Each carries what the run row records: a failure's reason, what a person must decide, or the gate a
paused run waits on. Nothing here is retried by the engine; a step's own retries happen before these.
"""

from __future__ import annotations

from typing import Any


class RunFailed(Exception):
    """The run ends as failed with this reason (a step that failed for good, a blocking guardrail)."""


class Paused(Exception):
    """The run waits for a person at an approval gate; its state is the journal, nothing is lost."""

    def __init__(self, gate: str, approval_id: str) -> None:
        self.gate, self.approval_id = gate, approval_id
        super().__init__(f"waiting for approval {approval_id} at {gate}")


class NeedsAttention(Exception):
    """A person must decide: an at-most-once step was interrupted and its outcome is unknown."""

    def __init__(self, message: str, attention: dict[str, Any]) -> None:
        self.attention = attention
        super().__init__(message)


class StartError(ValueError):
    """A run that cannot start: bad input, a skill that does not resolve. The message says which."""
