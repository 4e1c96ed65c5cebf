"""What `adaptive` reservations learn: a high percentile of past output sizes per model group and agent.

Kept per replica, in memory: each replica learns from its own traffic, which is plenty for a percentile.
Until `min_samples` outputs were seen the reservation is the strict bound.
"""

from __future__ import annotations

import bisect
from collections import deque

# (model group, agent) pairs learned at most; past it the one learned first is forgotten (and falls back
# to the strict bound until it has `min_samples` again). Each keeps `keep` samples: ~2 x 500 ints.
MAX_KEYS = 1024


class OutputStats:
    def __init__(self, *, keep: int = 500, min_samples: int = 20, max_keys: int = MAX_KEYS) -> None:
        self._keep = keep
        self._min = min_samples
        self._max_keys = max_keys
        self._recent: dict[tuple[str, str | None], deque[int]] = {}
        self._sorted: dict[tuple[str, str | None], list[int]] = {}

    def observe(self, model: str, agent: str | None, output_tokens: int) -> None:
        key = (model, agent)
        if key not in self._recent and len(self._recent) >= self._max_keys:
            oldest = next(iter(self._recent))
            del self._recent[oldest], self._sorted[oldest]
        recent = self._recent.setdefault(key, deque())
        ordered = self._sorted.setdefault(key, [])
        if len(recent) >= self._keep:
            old = recent.popleft()
            del ordered[bisect.bisect_left(ordered, old)]
        recent.append(output_tokens)
        bisect.insort(ordered, output_tokens)

    def __len__(self) -> int:
        return len(self._recent)

    def percentile(self, model: str, agent: str | None, p: float) -> int | None:
        ordered = self._sorted.get((model, agent))
        if not ordered or len(ordered) < self._min:
            return None
        index = min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))
        return ordered[index]
