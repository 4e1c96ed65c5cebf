"""Another gateway replica in its own OS process, for the shared-state tests.

Usage: python breaker_replica.py REDIS_URL KEY COUNT NOW THRESHOLD
Prints "ready", waits for a line on stdin (so both replicas start together), makes COUNT observations
of $1 at the fixed time NOW, then prints how many of them were answered "closed".
"""

from __future__ import annotations

import asyncio
import sys

from breaker_support import spec_with

from fleetplane.state.breaker import RedisBreakerStore, Trigger
from fleetplane.state.clock import ManualClock


async def main(url: str, key: str, count: int, now: float, threshold: float) -> None:
    store = RedisBreakerStore(url, clock=ManualClock(start=now))
    spec = spec_with(Trigger("spend", window=60, threshold=threshold, kind="sum"), key=key)
    print("ready", flush=True)
    sys.stdin.readline()
    closed = 0
    for _ in range(count):
        closed += (await store.observe(spec, "spend", 1.0)).status == "closed"
    await store.close()
    print(closed, flush=True)


if __name__ == "__main__":
    url, key, count, now, threshold = sys.argv[1:6]
    asyncio.run(main(url, key, int(count), float(now), float(threshold)))
