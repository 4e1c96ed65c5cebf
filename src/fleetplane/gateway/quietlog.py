"""Warnings that would repeat on every request while a dependency is away (Redis, the database) are
logged once per interval per kind, with how many were held back in between."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("fleetplane.gateway")


class Throttled:
    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, float("-inf")) < self._interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        held = self._held.pop(kind, 0)
        self._last[kind] = now
        suffix = f" ({held} more like it in the last {self._interval:g}s)" if held else ""
        log.warning(message + suffix, *args)


THROTTLED = Throttled()
