"""The quota store protocol: what the gateway's L1 policy calls, whichever store holds the counters.

Life of a reservation: `admit` charges its estimate to every limit at once (or to none) and starts a lease;
`commit` records usage known so far and renews the lease; `extend` admits more when a stream outgrows its
estimate; `settle` (or `release`, or lease expiry) replaces the estimate with the real usage. Every path
ends the reservation exactly once, so nothing it held can leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from fleetplane.state.quota.model import Charge, Decision, Limit, LimitUsage


class QuotaStoreUnavailable(Exception):
    """The store could not answer (Redis down, timeout, a script failed); the caller picks closed or open."""


class UnknownReservation(LookupError):
    """`extend` named a reservation that is not open (never admitted, settled, or expired)."""


class QuotaStore(Protocol):
    async def admit(
        self, reservation_id: str, limits: Sequence[Limit], charge: Charge, *, lease: float
    ) -> Decision:
        """Charge `charge` to every limit, or to none; a reused id returns the first decision, uncharged."""
        ...

    async def extend(self, reservation_id: str, delta: Charge) -> Decision:
        """Admit `delta` more, atomically over the limits the reservation was admitted on.

        Raises `UnknownReservation` when the reservation is no longer open.
        """
        ...

    async def commit(self, reservation_id: str, used: Charge, *, lease: float | None = None) -> bool:
        """Record cumulative usage known so far (kept through a lease expiry) and renew the lease.

        `lease` replaces the lease length from here on; None renews by the current length.
        Returns False, changing nothing, when the reservation is no longer open.
        """
        ...

    async def settle(self, reservation_id: str, final: Charge) -> bool:
        """Reconcile to real usage; True only for the call that ended the reservation."""
        ...

    async def release(self, reservation_id: str) -> bool:
        """Settle at what was committed (e.g. the attempt failed before any token)."""
        ...

    async def expire(self) -> int:
        """Settle every reservation whose lease has passed at its committed usage; returns how many."""
        ...

    async def usage(self, limits: Sequence[Limit]) -> list[LimitUsage]: ...

    async def close(self) -> None: ...


def check_admission(limits: Sequence[Limit], lease: float) -> None:
    """Refuse malformed calls before anything is charged."""
    if not lease > 0:
        raise ValueError(f"a lease must be > 0 seconds, not {lease!r}")
    seen: set[str] = set()
    for limit in limits:
        if limit.key in seen:
            # Two limits on one counter would each see the other's charge missing and admit twice.
            raise ValueError(f"limit key {limit.key!r} appears twice in one admission")
        seen.add(limit.key)
