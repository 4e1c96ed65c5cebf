"""The control plane's own costs: time from apply to the first ready replica, time to complete a rollback,
and the reconciler's CPU with many idle agents.

- **apply → ready**: a new Agent is applied to the store; the clock stops when the reconciler (polling
  every `--poll` s, as `fleetplane up` does) has adopted it and its first replica passes readiness
  (GET /healthz every 50 ms) under the real supervisor in `--tier`.
- **rollback**: revision 1 runs 2 ready replicas; revision 2 (a startup probe that fails) is applied and
  its surge replica has failed once; the clock runs from `undo` until the loop has started on it, until
  the rollout reports complete (the old replicas untouched), and until the broken sandbox is torn down.
- **reconciler CPU**: `--idle` agents of one replica each, kept by the real reconciler loop (poll 1 s) over
  a launcher whose replicas are always ready, so only the control plane's own cost is counted (the
  supervisor's cost per idle replica is measured by benchmarks/runtime_start.py).

    .venv/bin/python benchmarks/runtime_control.py --runs 5 --tier bwrap --idle 100
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import command_line, cpu_seconds, machine, now_utc, source, spread, write_result
from rich.console import Console
from rich.table import Table

from fleetplane.manifests.loader import load
from fleetplane.runtime.reconciler import declared_tier
from fleetplane.runtime.replica import ReplicaSpec, ReplicaState
from fleetplane.runtime.service import AgentService, RuntimeSettings
from fleetplane.store.db import Store
from fleetplane.store.desired import apply_desired

TENANCY = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {name: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {name: bench}
spec: {organization: acme}
"""
AGENT_CODE = """\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def agent(name: str, tier: str, *, replicas: int = 1, startup: str = "/healthz", version: str = "1") -> str:
    trust = "trusted" if tier == "process" else "internal"
    return f"""\
---
apiVersion: fleetplane.dev/v1alpha1
kind: Agent
metadata: {{name: {name}}}
spec:
  run: {{command: [python, agent.py], workdir: code}}
  replicas: {{min: {replicas}, max: {replicas}}}
  trust: {trust}
  isolation: {tier}
  network: {{mode: none}}
  resources: {{cpu: 500m, memory: 128Mi, pids: 64, disk: 8Mi}}
  env: {{VERSION: "{version}"}}
  probes:
    startup: {{http: {{path: {startup}}}, period: 0.05s, failureThreshold: 40}}
    readiness: {{http: {{path: /healthz}}, period: 0.05s}}
"""


async def until(check: Callable[[], bool], timeout: float = 60.0, state: Callable[[], Any] = str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the control plane did not get there in time: {state()}")
        await asyncio.sleep(0.005)


class Bench:
    def __init__(self, directory: Path, tier: str, poll: float) -> None:
        self.directory = directory
        self.fleet = directory / "fleet"
        (self.fleet / "code").mkdir(parents=True)
        (self.fleet / "code" / "agent.py").write_text(AGENT_CODE)
        self.tier = tier
        self.poll = poll
        self.now = time.time()

    async def apply(self, store: Store, agents: str) -> None:
        (self.fleet / "fleet.yaml").write_text(TENANCY + agents)
        self.now += 1
        await apply_desired(store, load(self.fleet), now=self.now)

    async def measure(self, runs: int) -> dict[str, list[float]]:
        store = await Store.open(f"sqlite:///{self.directory / 'bench.db'}")
        settings = RuntimeSettings(
            fleet_dir=self.fleet, root=self.directory / "rt", poll=self.poll, stop_grace=1
        )
        service = AgentService(store, settings, tiers=declared_tier)
        await service.start()
        assert service.reconciler is not None
        r = service.reconciler
        out: dict[str, list[float]] = {
            "apply_to_ready": [],
            "undo_to_started": [],
            "undo_to_complete": [],
            "undo_to_broken_stopped": [],
        }
        try:
            for i in range(runs):
                started = time.perf_counter()
                await self.apply(store, agent(f"fresh-{i}", self.tier))
                await until(
                    lambda name=f"fresh-{i}": bool(r.pools.get(name) and r.pools[name].routable()),
                    state=lambda: [p.report() for p in r.pools.values()],
                )
                out["apply_to_ready"].append(time.perf_counter() - started)
                await self.apply(store, "")  # remove it again
                await until(lambda name=f"fresh-{i}": name not in r.pools)
            await self.apply(store, agent("roll", self.tier, replicas=2))
            await until(lambda: "roll" in r.pools and r.pools["roll"].status() == "complete")
            for i in range(runs):
                pool = r.pools["roll"]
                good = frozenset(t.id for t in pool.routable())
                await self.apply(
                    store, agent("roll", self.tier, replicas=2, startup="/broken", version=f"bad{i}")
                )
                await until(
                    lambda good=good: any(
                        t.id not in good and t.replica.restarts >= 1 for t in r.pools["roll"].replicas
                    )
                )
                number = pool.revision.number
                started = time.perf_counter()
                await r.undo("roll")
                await until(lambda n=number: r.pools["roll"].revision.number > n, timeout=10)
                out["undo_to_started"].append(time.perf_counter() - started)
                await until(lambda: r.pools["roll"].status() == "complete")
                out["undo_to_complete"].append(time.perf_counter() - started)
                await until(lambda: len(r.pools["roll"].replicas) == 2)  # its sandbox torn down
                out["undo_to_broken_stopped"].append(time.perf_counter() - started)
                assert {t.id for t in r.pools["roll"].replicas} == good
        finally:
            await service.stop()
            await store.close()
        return out


class ReadyReplica:
    """A replica that is ready at once and costs nothing: only the control plane is measured."""

    def __init__(self, spec: ReplicaSpec) -> None:
        self.spec = spec
        self.state = ReplicaState.READY
        self.endpoint = "/nonexistent"
        self.pid = None
        self.restarts = 0
        self.last_exit = None
        self.log_path = Path("/nonexistent")

    def on_change(self, callback: Any) -> Callable[[], None]:
        return lambda: None

    async def wait_for(self, states: Any, timeout: float | None = None) -> ReplicaState:
        return self.state

    async def stop(self, grace: float | None = None) -> None:
        self.state = ReplicaState.STOPPED


class ReadyLauncher:
    async def start(self, spec: ReplicaSpec) -> ReadyReplica:
        return ReadyReplica(spec)

    async def close(self) -> None:
        return None


async def reconciler_cpu(directory: Path, count: int, seconds: float) -> dict[str, float]:
    bench = Bench(directory, "process", 1.0)
    store = await Store.open(f"sqlite:///{directory / 'idle.db'}")
    settings = RuntimeSettings(fleet_dir=bench.fleet, root=directory / "rt-idle", poll=1.0)
    service = AgentService(store, settings, launcher=ReadyLauncher(), tiers=declared_tier)  # type: ignore[arg-type]
    await bench.apply(store, "".join(agent(f"idle-{i}", "process") for i in range(count)))
    await service.start()
    assert service.reconciler is not None
    await until(lambda: len(service.reconciler.pools) == count)  # type: ignore[union-attr]
    passes = []
    for _ in range(5):
        started = time.perf_counter()
        await service.reconciler.sync()
        passes.append(time.perf_counter() - started)
    cpu_before, wall_before = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu = cpu_seconds() - cpu_before
    wall = time.perf_counter() - wall_before
    await service.stop()
    await store.close()
    return {"cpu_percent": 100 * cpu / wall, "pass_ms": 1000 * statistics.median(passes)}


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tier", default="bwrap", choices=["process", "bwrap", "gvisor"])
    parser.add_argument("--poll", type=float, default=1.0, help="the reconciler's poll interval (up: 1 s)")
    parser.add_argument("--idle", type=int, default=100, help="idle agents for the reconciler's CPU")
    parser.add_argument("--window", type=float, default=30.0, help="seconds the idle CPU is measured over")
    args = parser.parse_args()
    when = now_utc()
    with tempfile.TemporaryDirectory(prefix="fp-bench-control-") as tmp:
        timings = await Bench(Path(tmp) / "t", args.tier, args.poll).measure(args.runs)
        idle = await reconciler_cpu(Path(tmp) / "i", args.idle, args.window)
    table = Table("measure", "median", "min", "max")
    for name, values in timings.items():
        s = spread(values)
        table.add_row(
            name, f"{1000 * s['median']:.0f} ms", f"{1000 * s['min']:.0f} ms", f"{1000 * s['max']:.0f} ms"
        )
    table.add_row(
        f"reconciler CPU, {args.idle} idle agents", f"{idle['cpu_percent']:.2f} % of a core", "", ""
    )
    table.add_row(f"one reconcile pass, {args.idle} agents", f"{idle['pass_ms']:.1f} ms", "", "")
    Console().print(table)
    data = {
        "command": command_line(),
        "machine": machine(),
        "source": source(),
        "args": vars(args),
        "timings": {k: spread(v) for k, v in timings.items()},
        "raw": timings,
        "idle": idle,
    }
    print(f"written to {write_result('runtime_control', data, when)}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
