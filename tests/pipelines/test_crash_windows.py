"""Crash windows: a worker process is killed with SIGKILL between intent and execution, execution and
commit, commit and sink — for each effect class — and another worker resumes the run from the journal.

No committed step runs again; idempotent writes reach the sink exactly once; an at-most-once step is
never executed twice (its unknown outcome waits for a person instead).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fakeskills import EFFECTS_ENV, FakeCatalog, effects_log
from sqlalchemy import select

from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.engine import start_run
from fleetplane.pipelines.faults import FAULT_ENV
from fleetplane.pipelines.journal import idempotency_key
from fleetplane.pipelines.runs import RunStore
from fleetplane.pipelines.worker import Worker
from fleetplane.state.clock import ManualClock
from fleetplane.store.db import Store
from fleetplane.store.tables import pipeline_sink_rows

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).parent / "crash_worker.py"


class Receiver:
    """An HTTP sink target that applies each Idempotency-Key once, as a well-behaved API does."""

    def __init__(self) -> None:
        self.requests: list[tuple[str | None, str | None]] = []  # (idempotency key, traceparent)
        self.applied: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                key = self.headers.get("idempotency-key")
                receiver.requests.append((key, self.headers.get("traceparent")))
                if key not in receiver.applied:
                    receiver.applied.append(key or "")
                self.send_response(201)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/crm"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()


def pipeline(skill: str, url: str) -> str:
    return f"""
    metadata: {{name: crashy}}
    spec:
      execute:
        - {{id: a, skill: echo@*, input: {{n: 1}}}}
        - {{id: b, skill: {skill}@*, needs: [a], input: {{amount: 7}}}}
        - {{id: c, skill: echo@*, needs: [b], input: {{n: 3}}}}
      sink:
        - name: crm
          http: {{url: "{url}", body: "{{{{ steps.b.output }}}}"}}
        - name: rows
          table: {{name: payments, row: "{{{{ steps.b.output }}}}"}}
    """


@dataclass
class Case:
    skill: str  # the skill of step b
    fault: str  # where the worker dies
    status: str  # how the run ends after another worker resumes it
    executions: int  # how often step b's skill really ran, crash and resume together
    deliveries: int = 1  # HTTP requests the sink target received (all with one key)
    postgres: bool = False  # the store: SQLite, or a fresh Postgres database


CASES = [
    Case("echo", "after_intent:b", "succeeded", 1),
    Case("echo", "after_execute:b", "succeeded", 2),  # pure: running it again is harmless
    Case("echo", "after_commit:b", "succeeded", 1),
    Case("charge", "after_intent:b", "succeeded", 1),
    Case("charge", "after_execute:b", "succeeded", 2),  # idempotent write: again, with the same key
    Case("charge", "after_commit:b", "succeeded", 1),
    Case("refund", "after_intent:b", "needs_attention", 0, 0),  # at-most-once, outcome unknown: a person
    Case("refund", "after_execute:b", "needs_attention", 1, 0),
    Case("refund", "after_commit:b", "succeeded", 1),
    Case("refund-r", "after_execute:b", "succeeded", 1),  # reconcile: it happened; its outcome commits
    Case("charge", "after_commit:c", "succeeded", 1),  # between the last commit and the sink
    Case("charge", "after_sink_intent:sink:crm", "succeeded", 1),
    Case("charge", "after_sink_send:sink:crm", "succeeded", 1, 2),  # delivered, not recorded: sent again
    # The same guarantees on Postgres, one case per effect class at its most telling window.
    Case("echo", "after_execute:b", "succeeded", 2, postgres=True),
    Case("charge", "after_execute:b", "succeeded", 2, postgres=True),
    Case("refund", "after_execute:b", "needs_attention", 1, 0, postgres=True),
    Case("charge", "after_sink_send:sink:crm", "succeeded", 1, 2, postgres=True),
]


@pytest.fixture
def postgres_databases(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """Fresh Postgres databases on demand, dropped afterwards."""
    import psycopg
    from psycopg import sql

    made: list[str] = []

    def create() -> str:
        name = f"fleetplane_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return f"{postgres_server_url.rpartition('/')[0]}/{name}"

    yield create
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def test_crash_windows(
    make_plan: Any,
    tmp_path: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    postgres_databases: Callable[[], str],
) -> None:
    """Every case in its own store and worker process, the processes killed concurrently (test time)."""
    started: list[tuple[Case, Deps, str, Path, asyncio.subprocess.Process]] = []
    for i, case in enumerate(CASES):
        url = postgres_databases() if case.postgres else f"sqlite:///{tmp_path / f'case{i}.db'}"
        effects = tmp_path / f"effects{i}.jsonl"
        store = await Store.open(url)
        deps = Deps(
            store=store,
            catalogs=lambda _s: FakeCatalog(),
            clock=ManualClock(start=time.time()),
            sink_root=tmp_path / f"sinks{i}",
        )
        run, _ = await start_run(deps, make_plan(pipeline(case.skill, receiver.url)), {})
        env = {**os.environ, FAULT_ENV: case.fault, EFFECTS_ENV: str(effects)}
        command = [sys.executable, str(WORKER), url, str(deps.sink_root)]
        process = await asyncio.create_subprocess_exec(*command, env=env, stderr=asyncio.subprocess.PIPE)
        started.append((case, deps, run.id, effects, process))
    for case, deps, run_id, effects, process in started:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode == -signal.SIGKILL, (case, stderr.decode()[-2000:])
        crashed = await RunStore(deps.store).get(run_id)
        assert crashed is not None and crashed.status == "running", case  # the dead worker holds the lease
        monkeypatch.setenv(EFFECTS_ENV, str(effects))
        deps.clock.set(time.time() + deps.lease_ttl + 1)  # type: ignore[attr-defined]  # the lease lapses
        await Worker(deps, owner="survivor").drain()
        ended = await RunStore(deps.store).get(run_id)
        assert ended is not None and ended.status == case.status, (case, ended and ended.error)
        assert len(runs_of("echo", "a")) == 1, case  # committed before the crash: replayed, never re-run
        b = runs_of(case.skill.removesuffix("-r"), "b")
        assert len(b) == case.executions, case
        assert len({e["key"] for e in b}) <= 1, case  # every execution carried the same idempotency key
        key = idempotency_key(run_id, "sink:crm")
        delivered = [k for k, _ in receiver.requests if k == key]
        assert (len(delivered), delivered.count(key)) == (case.deliveries, case.deliveries), case
        assert receiver.applied.count(key) == (1 if case.status == "succeeded" else 0), case
        assert await sink_rows(deps) == (1 if case.status == "succeeded" else 0), case
        if case.status == "succeeded":
            assert len(runs_of("echo", "c")) == 1, case
        await deps.http.aclose()
        await deps.store.close()


def runs_of(skill: str, step: str) -> list[dict[str, Any]]:
    return [e for e in effects_log() if e["skill"] == skill and e["step"] == step]


async def sink_rows(deps: Deps) -> int:
    async with deps.store.engine.connect() as conn:
        return len((await conn.execute(select(pipeline_sink_rows))).all())
