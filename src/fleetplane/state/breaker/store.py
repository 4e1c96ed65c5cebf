"""The breaker store protocol: what the gateway's L2 layer calls, in process or on Redis.

Use: `check` before a request; `observe` each condition the gateway measures (before or after the
call); when `check` granted a probe (`verdict.probe`), report how it went exactly once with
`probe_done`. A probe's observations can only fail it (re-open); closing counts `probe_done(good=True)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from fleetplane.state.breaker.model import Arrived, BreakerSnapshot, BreakerSpec, Step, Verdict
from fleetplane.state.clock import SYSTEM_CLOCK, Clock


class BreakerStoreUnavailable(Exception):
    """The shared store cannot be reached; the caller decides (the gateway fails open for breakers)."""


class BreakerStore(Protocol):
    async def check(self, spec: BreakerSpec) -> Verdict:
        """Closed: admitted. Open: refused with the reason and retry_after. Half-open: admitted as a
        probe while one of `half_open_probes` slots is free, else refused."""
        ...

    async def observe(
        self,
        spec: BreakerSpec,
        trigger: str,
        amount: float,
        *,
        bad: bool = False,
        sample: float = 1.0,
        probe: bool = False,
    ) -> Verdict:
        """Count one observation in `trigger`'s window (sum/max: `amount`; ratio: `sample` to the total
        and, when `bad`, to the bad count) and trip when the windowed value passes the threshold.
        While open, observations are dropped. `probe=True` while half-open: a tripping (for ratio: a
        bad) observation re-opens with a doubled opening; a passing one changes nothing."""
        ...

    async def probe_done(self, spec: BreakerSpec, *, good: bool) -> Verdict:
        """A probe finished: good counts toward `close_after`; bad re-opens with a doubled opening.
        Ignored unless the breaker is half-open with a probe in flight."""
        ...

    async def arrive(self, items: Sequence[tuple[BreakerSpec, Sequence[Step]]]) -> list[Arrived]:
        """A request's arrival at every breaker it answers to, in one call (one script call on Redis):
        per breaker in order, `check`; when admitted, its steps (observations with `probe` = the check's
        grant). The first refusal ends the arrival: the answer lists the breakers up to and including
        it, so later ones were neither checked nor observed (as calling them one by one would do)."""
        ...

    async def record(self, items: Sequence[tuple[BreakerSpec, Sequence[Step]]]) -> list[list[Verdict]]:
        """Every step of every breaker (observations, probe reports), in one call; one verdict per step."""
        ...

    async def reset(self, key: str) -> bool:
        """Forget the breaker (closed, windows and back-off cleared); False when it was not known."""
        ...

    async def snapshot(self, keys: Sequence[str] | None = None) -> list[BreakerSnapshot]:
        """Every known breaker (sorted by key), or the given ones in order (unknown ones: closed)."""
        ...

    async def close(self) -> None: ...


def open_breaker_store(redis_url: str | None, *, clock: Clock | None = None) -> BreakerStore:
    """Redis when a URL is configured (server time unless a clock is given), else in-process."""
    if redis_url:
        from fleetplane.state.breaker.redis_store import RedisBreakerStore

        return RedisBreakerStore(redis_url, clock=clock)
    from fleetplane.state.breaker.memory import MemoryBreakerStore

    return MemoryBreakerStore(clock=clock or SYSTEM_CLOCK)
