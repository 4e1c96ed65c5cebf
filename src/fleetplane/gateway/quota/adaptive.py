"""What `adaptive` reservations learn: a high percentile of past output sizes per model group and agent.

Kept per replica, in memory: each replica learns from its own traffic, which is plenty for a percentile.
Until `min_samples` outputs were seen the reservation is the strict bound.
"""

from __future__ import annotations

import bisect
from collections import deque


class OutputStats:
    def __init__(self, *, keep: int = 500, min_samples: int = 20) -> None:
        self._keep = keep
        self._min = min_samples
        self._recent: dict[tuple[str, str | None], deque[int]] = {}
        self._sorted: dict[tuple[str, str | None], list[int]] = {}

    def observe(self, model: str, agent: str | None, output_tokens: int) -> None:
        key = (model, agent)
        recent = self._recent.setdefault(key, deque())
        ordered = self._sorted.setdefault(key, [])
        if len(recent) >= self._keep:
            old = recent.popleft()
            del ordered[bisect.bisect_left(ordered, old)]
        recent.append(output_tokens)
        bisect.insort(ordered, output_tokens)

    def percentile(self, model: str, agent: str | None, p: float) -> int | None:
        ordered = self._sorted.get((model, agent))
        if not ordered or len(ordered) < self._min:
            return None
        index = min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))
        return ordered[index]
