"""Exponential back-off with full jitter, a server's retry-after as a floor, and one deadline.

Full jitter (sleep = uniform(0, min(cap, base·2^attempt))) spreads a crowd of retrying clients over
the whole interval instead of marching them in step, which is what turns one upstream 429 into the
next one. A `retry-after` from the server is a floor, never shortened by the jitter: the server knows
when it will take work again. The deadline bounds the whole request, so a wait that would end past it
is not taken at all (None) and the caller answers now instead of failing later.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from fleetplane.state.clock import SYSTEM_CLOCK, Clock

_MAX_DOUBLINGS = 64  # 2**64·base is past any cap; keeps the float from overflowing on absurd attempts
_RNG = random.Random()


@dataclass(frozen=True)
class Backoff:
    base: float = 0.5
    cap: float = 30.0

    def __post_init__(self) -> None:
        if not (self.base > 0 and math.isfinite(self.cap) and self.cap >= self.base):
            raise ValueError(f"back-off needs 0 < base <= cap, got base={self.base!r}, cap={self.cap!r}")

    def ceiling(self, attempt: int) -> float:
        """The longest sleep before retry `attempt` (0 = the first retry)."""
        if attempt < 0:
            raise ValueError(f"attempt must be 0 or more, not {attempt}")
        return min(self.cap, self.base * 2.0 ** min(attempt, _MAX_DOUBLINGS))

    def delay(
        self, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to sleep before retry `attempt`: full jitter, raised to `retry_after` if that is longer."""
        sleep = (rng or _RNG).uniform(0.0, self.ceiling(attempt))
        if retry_after is not None and retry_after > sleep:  # NaN compares False: ignored
            sleep = retry_after
        return sleep

    def next_delay(
        self,
        attempt: int,
        *,
        now: float,
        deadline: float,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """The sleep before retry `attempt`, or None when the retry would start at or past `deadline`
        (a try with no time left cannot succeed)."""
        sleep = self.delay(attempt, retry_after=retry_after, rng=rng)
        return None if now + sleep >= deadline else sleep


class Retries:
    """The back-off of one request: counts its attempts and sleeps on the injected clock.

    `deadline` is on `clock.monotonic()`, the clock for deadlines.
    """

    def __init__(
        self,
        backoff: Backoff,
        *,
        deadline: float,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self._backoff = backoff
        self._deadline = deadline
        self._clock = clock
        self._rng = rng
        self.attempt = 0

    def next_delay(self, retry_after: float | None = None) -> float | None:
        """The sleep before the next retry (and count it), or None when it would pass the deadline."""
        sleep = self._backoff.next_delay(
            self.attempt,
            now=self._clock.monotonic(),
            deadline=self._deadline,
            retry_after=retry_after,
            rng=self._rng,
        )
        if sleep is not None:
            self.attempt += 1
        return sleep

    async def wait(self, retry_after: float | None = None) -> bool:
        """Sleep before the next retry; False (without sleeping) when there is no time for one."""
        sleep = self.next_delay(retry_after)
        if sleep is None:
            return False
        await self._clock.sleep(sleep)
        return True
