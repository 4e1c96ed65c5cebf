"""Start latency per isolation tier against a plain process, and memory per idle replica per tier.

For each tier the supervisor starts a replica of a tiny stdlib HTTP agent and the clock stops when its
readiness probe (GET /healthz through the replica's endpoint, every 5 ms) first passes: the time to the
first request it could serve. The baseline is the same agent started as a plain child process and polled
on its TCP port the same way. Memory is the replica cgroup's usage (agent, forwarder and — for gVisor —
Sentry and Gofer, plus tmpfs pages) after the replica has idled for a second.

    .venv/bin/python benchmarks/runtime_start.py --runs 10 --tiers process,bwrap,gvisor
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import command_line, machine, now_utc, source, spread, write_result
from rich.console import Console
from rich.table import Table

from fleetplane.runtime.replica import HttpCheck, Probes, ProbeSpec, ReplicaSpec, ReplicaState, Resources
from fleetplane.runtime.supervisor import Supervisor

AGENT = """
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers()
        self.wfile.write(b"ok")
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""
PROBE = Probes(readiness=ProbeSpec(HttpCheck("/healthz"), period=0.005, timeout=1.0, failure_threshold=1))


def plain_start(agent: Path) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    env = {**os.environ, "PORT": str(port)}
    proc = subprocess.Popen([sys.executable, str(agent)], env=env)
    try:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                    if conn.recv(64).startswith(b"HTTP/1.0 200"):
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()


async def tier_start(sup: Supervisor, tier: str, agent: Path, logs: Path, n: int) -> tuple[float, int]:
    spec = ReplicaSpec(
        agent="bench",
        replica_id=f"bench-{tier}-{n}",
        revision="r",
        argv=(sys.executable, agent.name),  # relative to cwd: /agent inside, the directory itself for process
        cwd=str(agent.parent),
        log_dir=logs,
        tier=tier,  # type: ignore[arg-type]
        network="none",
        resources=Resources(cpu_millis=1000, memory_bytes=256 * 2**20, pids=64, disk_bytes=16 * 2**20),
        probes=PROBE,
    )
    started = time.perf_counter()
    replica = await sup.start(spec)
    await replica.wait_for({ReplicaState.READY}, timeout=60)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)
    memory = replica.cgroup.memory_current() if replica.cgroup is not None else -1
    await replica.stop(grace=1.0)
    return elapsed, memory


async def idle_cpu(count: int, tier: str, agent: Path, tmp: Path, seconds: float) -> dict[str, float]:
    """The supervisor's own CPU while `count` single-replica agents idle, probed as by default (readiness
    every 5 s, liveness every 10 s)."""
    probes = Probes(
        readiness=ProbeSpec(HttpCheck("/healthz"), period=5.0, timeout=2.0),
        liveness=ProbeSpec(HttpCheck("/healthz"), period=10.0, timeout=2.0),
    )
    sup = Supervisor(tmp / "idle-runtime")
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> None:
        async with gate:
            spec = ReplicaSpec(
                agent=f"idle{n}",
                replica_id=f"idle-{n}",
                revision="r",
                argv=(sys.executable, agent.name),
                cwd=str(agent.parent),
                log_dir=tmp / "logs",
                tier=tier,  # type: ignore[arg-type]
                network="none",
                resources=Resources(cpu_millis=500, memory_bytes=128 * 2**20, pids=32, disk_bytes=2**20),
                probes=probes,
            )
            replica = await sup.start(spec)
            await replica.wait_for({ReplicaState.READY}, timeout=120)

    try:
        await asyncio.gather(*(one(n) for n in range(count)))
        await asyncio.sleep(2.0)
        before_wall, before_cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - before_cpu
        wall = time.perf_counter() - before_wall
    finally:
        await sup.close(grace=2.0)
    return {
        "replicas": count,
        "cpu_percent": 100 * cpu / wall,
        "cpu_ms_per_replica_per_s": 1000 * cpu / wall / count,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tiers", default="process,bwrap,gvisor")
    parser.add_argument("--idle", type=int, default=0, help="also: supervisor CPU with this many idle agents")
    parser.add_argument("--idle-tier", default="bwrap")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    tiers = [t for t in args.tiers.split(",") if t]
    when = now_utc()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fp-bench-") as tmp:
        agent = Path(tmp) / "agent" / "bench_agent.py"
        agent.parent.mkdir()
        agent.write_text(AGENT)
        os.chmod(agent.parent, 0o755)
        baseline = [plain_start(agent) for _ in range(args.runs)]
        results["plain process"] = {"start_s": spread(baseline), "memory_mb": None}
        sup = Supervisor(Path(tmp) / "runtime")
        for tier in tiers:
            runs = [await tier_start(sup, tier, agent, Path(tmp) / "logs", n) for n in range(args.runs)]
            results[tier] = {
                "start_s": spread([r[0] for r in runs]),
                "memory_mb": spread([r[1] / 2**20 for r in runs]),
            }
        await sup.close()
        if args.idle:
            results["idle"] = await idle_cpu(args.idle, args.idle_tier, agent, Path(tmp), args.idle_seconds)
    table = Table(title=f"replica start to first ready probe ({args.runs} runs each)")
    for column in ("mechanism", "start median ms", "min-max ms", "idle memory MiB (median)"):
        table.add_column(column)
    for name, row in results.items():
        if name == "idle":
            continue
        s = row["start_s"]
        mem = row["memory_mb"]
        table.add_row(
            name,
            f"{s['median'] * 1000:.0f}",
            f"{s['min'] * 1000:.0f}-{s['max'] * 1000:.0f}",
            "—" if mem is None else f"{mem['median']:.1f}",
        )
    Console().print(table)
    if "idle" in results:
        idle = results["idle"]
        print(
            f"supervisor CPU with {idle['replicas']} idle {args.idle_tier} agents: "
            f"{idle['cpu_percent']:.1f}% of one core "
            f"({idle['cpu_ms_per_replica_per_s']:.2f} ms per replica per second)"
        )
    path = write_result(
        "runtime_start",
        {
            "command": command_line(),
            "when": when.isoformat(),
            "machine": machine(),
            "source": source(),
            "results": results,
        },
        when,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
