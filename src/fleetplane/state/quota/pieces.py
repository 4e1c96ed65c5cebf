"""How one reservation sits in one limit's buckets, and how that changes when it grows or is settled.

A reservation's share of a windowed limit is a list of pieces, (bucket, amount), oldest first: the amount
admitted goes into the admission bucket; anything added later (an extension, usage committed or settled
beyond what was held) goes into the bucket current at that moment, so a long stream is charged where its
tokens were produced and never slips out of the window unpaid. A reduction (settled below what was held)
takes from the newest pieces first, since the latest additions are the most speculative.

Of what a reservation holds, the part not yet committed is "reserved"; it is attributed to the newest
pieces, consistently with reductions. Each operation computes the reservation's contribution to every
bucket before and after and writes only the difference, and only for buckets still in the window: once a
bucket has left, its adjustment no longer matters and is dropped. `scripts/reservations.lua` mirrors this.
"""

from __future__ import annotations

from fleetplane.state.quota.windows import UNPLACED

Piece = tuple[int, float]


def reshape(pieces: list[Piece], held: float, new_held: float, cur: int | None) -> list[Piece]:
    out = list(pieces)
    if new_held > held:
        idx = UNPLACED if cur is None else cur
        if out and out[-1][0] == idx:
            out[-1] = (idx, out[-1][1] + (new_held - held))
        else:
            out.append((idx, new_held - held))
    elif new_held < held:
        cut = held - new_held
        while out and cut > 0:
            idx, amount = out[-1]
            if amount > cut:
                out[-1] = (idx, amount - cut)
                cut = 0
            else:
                out.pop()
                cut -= amount
    return out


def contributions(pieces: list[Piece], held: float, committed: float) -> dict[int, tuple[float, float]]:
    """Per bucket: (amount held there, of which still reserved)."""
    reserved = max(0.0, held - committed)
    out: dict[int, tuple[float, float]] = {}
    for idx, amount in reversed(pieces):
        part = min(amount, reserved)
        reserved -= part
        total, res = out.get(idx, (0.0, 0.0))
        out[idx] = (total + amount, res + part)
    return out


def changes(
    before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]]
) -> list[tuple[int, float, float]]:
    """(bucket, change of total, change of reserved) for every bucket that changes."""
    out = []
    for idx in sorted(before.keys() | after.keys()):
        t0, r0 = before.get(idx, (0.0, 0.0))
        t1, r1 = after.get(idx, (0.0, 0.0))
        if t1 != t0 or r1 != r0:
            out.append((idx, t1 - t0, r1 - r0))
    return out
