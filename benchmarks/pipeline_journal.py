"""What the pipelines' journal costs: per step, on SQLite and Postgres, against running the same skills
without it; how long a 100-step run takes to resume; how many runs per second a 5-step pipeline of pure
skills gets through.

    .venv/bin/python benchmarks/pipeline_journal.py                  # SQLite and Postgres, 3 repeats
    .venv/bin/python benchmarks/pipeline_journal.py --stores sqlite --repeat 5

Postgres is FLEETPLANE_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres); a
database is created for the run and dropped after. The skills are in-process pure functions, so what is
measured is the engine and the store: intent + commit per step (two fenced transactions), the output
stored by digest, the reasoning records, and the run's lease.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "pipelines"))

from common import command_line, machine, now_utc, source, spread, write_result
from fakeskills import Contract, FakeCatalog, FakeSkill, Ref

from fleetplane.manifests.pipeline import Pipeline
from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.engine import start_run
from fleetplane.pipelines.plan import Plan, compile_plan
from fleetplane.pipelines.runs import RunStore
from fleetplane.pipelines.worker import Worker
from fleetplane.store.db import Store

POSTGRES = os.environ.get("FLEETPLANE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def add(input: dict[str, Any], _ctx: Any = None) -> dict[str, Any]:
    return {"n": int(input["n"]) + 1, "note": "a pure step"}


def catalog() -> FakeCatalog:
    """One pure skill, `add`, from the pipelines tests' in-process catalog."""
    return FakeCatalog([FakeSkill(Ref("add", "1.0.0", "sha256:add"), Contract("add", "1.0.0"), add)])


def chain(steps: int) -> Plan:
    execute = [{"id": "s0", "skill": "add@*", "input": {"n": "{{ input.n }}"}}]
    for i in range(1, steps):
        execute.append(
            {
                "id": f"s{i}",
                "skill": "add@*",
                "needs": [f"s{i - 1}"],
                "input": {"n": f"{{{{ steps.s{i - 1}.output.n }}}}"},
            }
        )
    document = {
        "apiVersion": "fleetplane.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": f"chain{steps}"},
        "spec": {"execute": execute},
    }
    return compile_plan(Pipeline.model_validate(document))


async def direct(steps: int) -> float:
    """The same skills called one after the other, no engine, no journal: seconds."""
    started = time.perf_counter()
    value = {"n": 0}
    for _ in range(steps):
        value = await add(value)
    return time.perf_counter() - started


async def journaled(deps: Deps, plan: Plan) -> tuple[float, str]:
    """Start a run and take its turn: seconds, run id."""
    started = time.perf_counter()
    run, _ = await start_run(deps, plan, {"n": 0})
    await Worker(deps, owner="bench").turn(run.id)
    return time.perf_counter() - started, run.id


async def measure(url: str, steps: int, runs: int) -> dict[str, Any]:
    store = await Store.open(url)
    skills = catalog()
    deps = Deps(store=store, catalogs=lambda _s: skills)
    try:
        plan = chain(steps)
        await journaled(deps, plan)  # warm up: compile caches, connection pool
        per_step = []
        for _ in range(runs):
            seconds, run_id = await journaled(deps, plan)
            ended = await RunStore(store).get(run_id)
            assert ended is not None and ended.status == "succeeded", ended
            per_step.append((seconds - await direct(steps)) / steps * 1000)
        hundred = chain(100)
        _, run_id = await journaled(deps, hundred)
        resumes = []
        for _ in range(3):  # every step committed: a resume replays all 100 from the journal
            await RunStore(store).requeue(run_id, now=time.time(), statuses=("succeeded",))
            started = time.perf_counter()
            await Worker(deps, owner="bench").turn(run_id)
            resumes.append((time.perf_counter() - started) * 1000)
        five = chain(5)
        started = time.perf_counter()
        count = 0
        while time.perf_counter() - started < 5.0:
            await journaled(deps, five)
            count += 1
        return {
            "journal_overhead_ms_per_step": spread(per_step),
            "resume_100_steps_ms": spread(resumes),
            "runs_per_s_5_pure_steps": count / (time.perf_counter() - started),
        }
    finally:
        await deps.http.aclose()
        await store.close()


def postgres_database() -> tuple[str, str]:
    import psycopg
    from psycopg import sql

    name = f"fleetplane_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{POSTGRES.rpartition('/')[0]}/{name}", name


def drop(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--steps", type=int, default=20, help="steps per run for the overhead measurement")
    parser.add_argument("--repeat", type=int, default=3, help="runs measured per store")
    args = parser.parse_args()
    when = now_utc()
    results: dict[str, Any] = {}
    for kind in args.stores.split(","):
        if kind == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                results[kind] = asyncio.run(measure(f"sqlite:///{tmp}/bench.db", args.steps, args.repeat))
        else:
            url, name = postgres_database()
            try:
                results[kind] = asyncio.run(measure(url, args.steps, args.repeat))
            finally:
                drop(name)
    header = ("store", "journal ms/step (min/med/max)", "resume 100 steps ms (med)", "runs/s (5 pure steps)")
    print(f"{header[0]:10} {header[1]:32} {header[2]:26} {header[3]:>22}")
    for kind, r in results.items():
        o, z = r["journal_overhead_ms_per_step"], r["resume_100_steps_ms"]
        print(
            f"{kind:10} {o['min']:7.2f} / {o['median']:7.2f} / {o['max']:7.2f}        {z['median']:10.1f}"
            f"                 {r['runs_per_s_5_pure_steps']:10.1f}"
        )
    path = write_result(
        "pipeline_journal",
        {
            "command": command_line(),
            "when": when.isoformat(),
            "machine": machine(),
            "source": source(),
            "args": vars(args),
            "results": results,
        },
        when,
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
