"""One OS process hammering shared limits through its own RedisQuotaStore (run by test_redis_store.py).

    python hammer.py <redis url> <worker name> <requests> <seed>

Waits for the test's go signal so every process starts at once, admits `requests` reservations of
random sizes from 20 concurrent tasks, and prints what it was admitted as JSON.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).parent))

from quota_support import T0, hammered_limits

from fleetplane.state.clock import ManualClock
from fleetplane.state.quota import Admitted, Charge
from fleetplane.state.quota.redis_store import RedisQuotaStore


async def hammer(url: str, name: str, requests: int, seed: int) -> dict[str, int]:
    store = RedisQuotaStore(url, clock=ManualClock(start=T0))  # time stands still: no slot may leave
    sizes = random.Random(seed).choices(range(1, 50), k=requests)
    limits = hammered_limits()
    admitted: list[int] = []
    queue = list(enumerate(sizes))

    async def caller() -> None:
        while queue:
            i, size = queue.pop()
            decision = await store.admit(f"{name}-{i}", limits, Charge(tokens=size, requests=1), lease=600)
            if isinstance(decision, Admitted):
                admitted.append(size)

    await store.usage(limits)  # connected, scripts loaded: the race starts at the go signal
    control = redis.Redis.from_url(url)
    control.rpush("hammer:ready", name)
    if control.blpop(["hammer:go"], timeout=60) is None:
        raise SystemExit("no go signal")
    control.close()
    await asyncio.gather(*(caller() for _ in range(20)))
    await store.close()
    return {"tokens": sum(admitted), "count": len(admitted)}


if __name__ == "__main__":
    url, name, requests, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(hammer(url, name, requests, seed))))
