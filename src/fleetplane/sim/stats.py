"""What the simulator has served, per model: the ground truth gateway tests compare their own books with.

A stream ends in exactly one of: completed (final event sent), cancelled (the client went away first,
including from a hung stream) or truncated (the simulator dropped it on purpose).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ModelStats:
    requests: Counter[int] = field(default_factory=Counter)
    tokens_in: int = 0
    tokens_out: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0
    streams_truncated: int = 0
    streams_hung: int = 0

    def add(self, other: ModelStats) -> None:
        self.requests.update(other.requests)
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.streams_started += other.streams_started
        self.streams_completed += other.streams_completed
        self.streams_cancelled += other.streams_cancelled
        self.streams_truncated += other.streams_truncated
        self.streams_hung += other.streams_hung

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": {str(status): n for status, n in sorted(self.requests.items())},
            "requests_total": sum(self.requests.values()),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "streams": {
                "started": self.streams_started,
                "completed": self.streams_completed,
                "cancelled": self.streams_cancelled,
                "truncated": self.streams_truncated,
                "hung": self.streams_hung,
                "open": self.streams_started
                - self.streams_completed
                - self.streams_cancelled
                - self.streams_truncated,
            },
        }


# Requests that never named a served model (bad JSON, unknown model, auth failures) are kept apart.
UNROUTED = "(unrouted)"


class Stats:
    def __init__(self) -> None:
        self.models: dict[str, ModelStats] = {}

    def model(self, name: str) -> ModelStats:
        found = self.models.get(name)
        if found is None:
            found = self.models[name] = ModelStats()
        return found

    def reset(self) -> None:
        # Streams still open keep updating the objects they hold, which are dropped here; fresh ones start
        # at zero so a test reads only what happened after its reset.
        self.models = {}

    def to_dict(self) -> dict[str, Any]:
        total = ModelStats()
        for stats in self.models.values():
            total.add(stats)
        return {
            "models": {name: stats.to_dict() for name, stats in sorted(self.models.items())},
            "total": total.to_dict(),
        }
