"""Quota admission latency and CPU: the in-process store against the Redis store, side by side.

One admission = one request checked and charged on 12 limits (org, team, user, agent, model and key,
each with a tokens-per-minute and a requests-per-minute limit), as the gateway's L1 policy does it.
Each store runs the same two phases: sequential (one caller) and 50 concurrent callers on one event loop.
Latency is per `admit` call as its caller sees it (p50/p99, µs); CPU is this process's user+system time
per admission, and for Redis also the server's (INFO cpu; includes anything else using that server).

    .venv/bin/python benchmarks/quota_admission.py [--admissions 5000] [--redis redis://127.0.0.1:6379/0]

Redis runs on server time (no clock passed), as in production; keys go under a prefix of their own and
are deleted afterwards, so it is safe to run against a server that tests share.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from fleetplane.state.quota import Charge, Limit, MemoryQuotaStore, QuotaStore, SlidingWindow
from fleetplane.state.quota.redis_store import RedisQuotaStore

PREFIX = "fleetplane-bench:{quota}:"
SCOPES = ["org/acme", "team/acme/support", "user/ann", "agent/triage", "model/gpt-4o", "key/k1"]
MINUTE = SlidingWindow(seconds=60, slots=12)
LIMITS = [Limit(f"{s}/tpm", s, "tpm", "tokens", 1e12, MINUTE) for s in SCOPES] + [
    Limit(f"{s}/rpm", s, "rpm", "requests", 1e12, MINUTE) for s in SCOPES
]
CHARGE = Charge(tokens=1200, input_tokens=200, output_tokens=1000, requests=1)


@dataclass
class Row:
    store: str
    mode: str
    p50: float
    p99: float
    cpu_us: float
    server_cpu_us: float | None
    per_second: float


def redis_cpu(client: redis.Redis | None) -> float:
    if client is None:
        return 0.0
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def phase(
    name: str, mode: str, store: QuotaStore, count: int, callers: int, server: redis.Redis | None, tag: str
) -> Row:
    latencies: list[float] = []
    ids = iter(range(count))

    async def caller() -> None:
        for i in ids:
            start = time.perf_counter_ns()
            await store.admit(f"{tag}-{i}", LIMITS, CHARGE, lease=300)
            latencies.append((time.perf_counter_ns() - start) / 1000)

    cpu0, server0, wall0 = time.process_time(), redis_cpu(server), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    wall = time.perf_counter() - wall0
    cpu, server_cpu = time.process_time() - cpu0, redis_cpu(server) - server0
    # Not timed: the reservations end, so the next phase starts from the same state.
    for i in range(count):
        await store.settle(f"{tag}-{i}", CHARGE)
    cuts = statistics.quantiles(latencies, n=100)
    return Row(
        name,
        mode,
        p50=cuts[49],
        p99=cuts[98],
        cpu_us=cpu / count * 1e6,
        server_cpu_us=None if server is None else server_cpu / count * 1e6,
        per_second=count / wall,
    )


async def run_store(
    name: str, make: Callable[[], QuotaStore], count: int, server: redis.Redis | None
) -> list[Row]:
    store = make()
    try:
        # Warm-up: scripts loaded, connections open, caches filled.
        for i in range(200):
            await store.admit(f"warm-{i}", LIMITS, CHARGE, lease=300)
            await store.settle(f"warm-{i}", CHARGE)
        return [
            await phase(name, "sequential", store, count, 1, server, "seq"),
            await phase(name, "50 concurrent", store, count, 50, server, "conc"),
        ]
    finally:
        await store.close()


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'store':<8} {'callers':<14} {'p50 µs':>9} {'p99 µs':>9} {'CPU µs/adm':>11} "
        f"{'Redis CPU µs/adm':>17} {'adm/s':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        server = "-" if r.server_cpu_us is None else f"{r.server_cpu_us:.1f}"
        print(
            f"{r.store:<8} {r.mode:<14} {r.p50:>9.1f} {r.p99:>9.1f} {r.cpu_us:>11.1f} {server:>17} "
            f"{r.per_second:>9.0f}"
        )


async def main(count: int, url: str) -> list[Row]:
    rows = await run_store("memory", MemoryQuotaStore, count, None)
    server = redis.Redis.from_url(url)
    try:
        rows += await run_store("redis", lambda: RedisQuotaStore(url, prefix=PREFIX), count, server)
    finally:
        for key in server.scan_iter(match=PREFIX.replace("{", "[{]") + "*", count=1000):
            server.delete(key)
        server.close()
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admissions", type=int, default=5000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ns = parser.parse_args()
    try:
        import uvloop

        uvloop.install()  # the gateway runs on uvloop
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    version = redis.Redis.from_url(ns.redis).info("server")["redis_version"]
    print(
        f"quota admission: {ns.admissions} admissions x 12 limits per phase; "
        f"Python {platform.python_version()} ({loop_name}), Redis {version}, {platform.machine()}"
    )
    print_table(asyncio.run(main(ns.admissions, ns.redis)))
