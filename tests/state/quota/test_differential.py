"""The two stores are one algorithm: a long random sequence of every operation, run on both with the same
clock moves, gives the same answer at every step (the Lua scripts mirror windows.py and pieces.py)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from quota_support import T0, concurrent, rpm, tpm, usd_per_day

from fleetplane.state.clock import ManualClock
from fleetplane.state.quota import (
    Admitted,
    Charge,
    Denied,
    MemoryQuotaStore,
    QuotaStore,
    SlidingWindow,
    UnknownReservation,
)
from fleetplane.state.quota.redis_store import RedisQuotaStore

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

LIMITS = [
    tpm(limit=2000),
    tpm("user/ann/tpm", limit=900, window=SlidingWindow(seconds=10, slots=3)),
    rpm(limit=12),
    usd_per_day(limit=1.5, tz="Europe/Berlin"),
    concurrent(limit=4),
]


def normal(value: Any) -> Any:
    """Results in a comparable form: floats to 9 decimals (dollars add up in a different order)."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, Admitted):
        return ("admitted", value.reservation_id, normal(value.remaining), normal(value.reset_after))
    if isinstance(value, Denied):
        return (
            "denied",
            value.limit.key,
            *normal([value.used, value.reserved, value.requested, value.retry_after]),
        )
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normal(v) for v in value]
    return value


def random_charge(rng: random.Random, scale: int) -> Charge:
    tokens = rng.randint(0, scale)
    return Charge(tokens=tokens, output_tokens=tokens // 2, requests=1, dollars=rng.randint(0, 300) / 1000)


async def step(store: QuotaStore, op: tuple[Any, ...]) -> Any:
    name, *args = op
    try:
        if name == "admit":
            rid, which, charge, lease = args
            return await store.admit(rid, [LIMITS[i] for i in which], charge, lease=lease)
        if name == "extend":
            return await store.extend(*args)
        if name == "commit":
            rid, used, lease = args
            return await store.commit(rid, used, lease=lease)
        if name == "settle":
            return await store.settle(*args)
        if name == "release":
            return await store.release(*args)
        if name == "expire":
            return await store.expire()
        return [(u.used, u.reserved, u.reset_after) for u in await store.usage(LIMITS)]
    except UnknownReservation:
        return "unknown"


def operations(seed: int, count: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    ids: list[str] = []
    ops: list[tuple[Any, ...]] = []
    for n in range(count):
        kind = rng.choices(
            ["admit", "replay", "extend", "commit", "settle", "release", "expire", "usage", "advance"],
            weights=[8, 1, 3, 3, 3, 2, 1, 2, 4],
        )[0]
        if kind in ("admit", "replay") or not ids:
            rid = rng.choice(ids) if kind == "replay" and ids else f"r{n}"
            ids.append(rid)
            which = sorted(rng.sample(range(len(LIMITS)), rng.randint(1, len(LIMITS))))
            ops.append(("admit", rid, which, random_charge(rng, 400), rng.choice([5, 20, 60])))
        elif kind == "extend":
            ops.append(("extend", rng.choice(ids), random_charge(rng, 300)))
        elif kind == "commit":
            ops.append(("commit", rng.choice(ids), random_charge(rng, 600), rng.choice([None, 30])))
        elif kind in ("settle", "release"):
            args = (rng.choice(ids), random_charge(rng, 700)) if kind == "settle" else (rng.choice(ids),)
            ops.append((kind, *args))
        elif kind == "advance":
            # Mostly seconds; now and then across the Berlin midnight (T0 is 23:20 there).
            ops.append(("advance", rng.choice([0.5, 1.7, 3.3, 5.0, 12.0, 2400.0])))
        else:
            ops.append((kind,))
    return ops


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_memory_and_redis_answer_every_step_alike(redis_url: str, seed: int) -> None:
    clocks = ManualClock(start=T0), ManualClock(start=T0)
    memory, shared = MemoryQuotaStore(clock=clocks[0]), RedisQuotaStore(redis_url, clock=clocks[1])
    admitted = denied = 0
    try:
        for i, op in enumerate(operations(seed, 400)):
            if op[0] == "advance":
                for clock in clocks:
                    clock.advance(op[1])
                continue
            mine, theirs = await step(memory, op), await step(shared, op)
            assert normal(mine) == normal(theirs), f"step {i}: {op}"
            admitted += isinstance(mine, Admitted)
            denied += isinstance(mine, Denied)
    finally:
        await memory.close()
        await shared.close()
    assert admitted > 50 and denied > 20, "the sequence exercised both answers"
