"""The in-process counters of `count` and `growth` steps: request fingerprints seen, conversation sizes.

Every request of an agent with unique bodies adds one of each, so they are bounded twice: each entry
goes when its TTL ends (the trigger's window, the conversation's lifetime), and at most `max_entries`
are kept, the least recently used going first. A fingerprint is touched on every repeat, so a loop that
comes back at least once per `max_entries / 2` other requests is never forgotten; a forgotten count
starts over and a forgotten conversation's next turn is measured as a first turn: both err open.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict

# ~250 bytes an entry (key, value, expiry, heap slot): 10,000 cost ~2.5 MB.
MAX_COUNTERS = 10_000


class Counters:
    def __init__(self, *, max_entries: int = MAX_COUNTERS) -> None:
        self._max = max_entries
        self._data: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (value, expires)
        self._expiries: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._data)

    def _get(self, key: str, now: float) -> tuple[float, float] | None:
        item = self._data.get(key)
        if item is not None and item[1] <= now:
            del self._data[key]
            return None
        return item

    def _put(self, key: str, value: float, expires: float, now: float) -> None:
        known = self._data.pop(key, None)
        self._data[key] = (value, expires)
        if known is None or known[1] != expires:
            heapq.heappush(self._expiries, (expires, key))
        while self._expiries and self._expiries[0][0] <= now:
            expiry, old = heapq.heappop(self._expiries)
            item = self._data.get(old)
            if item is not None and item[1] == expiry:
                del self._data[old]
        while len(self._data) > self._max:
            self._data.popitem(last=False)
        if len(self._expiries) > 2 * len(self._data) + 64:
            # Entries evicted by size or re-timed leave stale heap slots: rebuild from what is kept.
            self._expiries = [(exp, k) for k, (_, exp) in self._data.items()]
            heapq.heapify(self._expiries)

    def incr(self, key: str, ttl: float, now: float) -> int:
        """Add one and return the count; the counter ends `ttl` after its first count."""
        item = self._get(key, now)
        count, expires = (1.0, now + ttl) if item is None else (item[0] + 1, item[1])
        self._put(key, count, expires, now)
        return int(count)

    def swap(self, key: str, value: float, ttl: float, now: float) -> float | None:
        """Remember `value` for `ttl` seconds; return what was remembered before, if anything."""
        item = self._get(key, now)
        self._put(key, value, now + ttl, now)
        return None if item is None else item[0]

    def drop(self, prefix: str) -> None:
        for key in [k for k in self._data if k.startswith(prefix)]:
            del self._data[key]

    def clear(self) -> None:
        self._data.clear()
        self._expiries.clear()
