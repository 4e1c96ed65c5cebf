"""Crash windows: a worker process is killed with SIGKILL between intent and execution, execution and
commit, commit and sink — for each effect class — and another worker resumes the run from the journal.

No committed step runs again; idempotent writes reach the sink exactly once; an at-most-once step is
never executed twice (its unknown outcome waits for a person instead).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fakeskills import effects_log
from sqlalchemy import select

from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.engine import start_run
from fleetplane.pipelines.faults import FAULT_ENV
from fleetplane.pipelines.runs import RunStore
from fleetplane.pipelines.worker import Worker
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


def crash(url: str, sink_root: Path, fault: str) -> None:
    env = {**os.environ, FAULT_ENV: fault}
    done = subprocess.run(
        [sys.executable, str(WORKER), url, str(sink_root)], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]


async def crash_and_resume(deps: Deps, make_plan: Any, url: str, skill: str, fault: str, target: str) -> Any:
    run, _ = await start_run(deps, make_plan(pipeline(skill, target)), {})
    crash(url, deps.sink_root, fault)
    crashed = await RunStore(deps.store).get(run.id)
    assert crashed is not None and crashed.status == "running"  # the dead worker still holds the lease
    deps.clock.set(time.time() + deps.lease_ttl + 1)  # type: ignore[attr-defined]  # the lease lapses
    await Worker(deps, owner="survivor").drain()
    return await RunStore(deps.store).get(run.id)


def runs_of(skill: str, step: str) -> list[dict[str, Any]]:
    return [e for e in effects_log() if e["skill"] == skill and e["step"] == step]


async def sink_rows(deps: Deps) -> int:
    async with deps.store.engine.connect() as conn:
        return len((await conn.execute(select(pipeline_sink_rows))).all())


# (skill under test, crash point) -> (final status, times step b executed)
CASES = {
    ("echo", "after_intent"): ("succeeded", 1),
    ("echo", "after_execute"): ("succeeded", 2),  # pure: running it again is harmless
    ("echo", "after_commit"): ("succeeded", 1),
    ("charge", "after_intent"): ("succeeded", 1),
    ("charge", "after_execute"): ("succeeded", 2),  # idempotent write: again, with the same key
    ("charge", "after_commit"): ("succeeded", 1),
    ("refund", "after_intent"): ("needs_attention", 0),
    ("refund", "after_execute"): ("needs_attention", 1),
    ("refund", "after_commit"): ("succeeded", 1),
    ("refund-r", "after_execute"): ("succeeded", 1),  # reconcile: it happened; its outcome is committed
}


@pytest.mark.parametrize(("skill", "point"), list(CASES))
async def test_a_crash_in_a_step(
    deps: Deps, make_plan: Any, sqlite_url: str, receiver: Receiver, skill: str, point: str
) -> None:
    ended = await crash_and_resume(deps, make_plan, sqlite_url, skill, f"{point}:b", receiver.url)
    status, executions = CASES[(skill, point)]
    assert ended.status == status, ended.error
    assert len(runs_of("echo", "a")) == 1  # committed before the crash: replayed, never re-run
    b = runs_of(skill.removesuffix("-r"), "b")
    assert len(b) == executions
    assert len({e["key"] for e in b}) <= 1  # every execution carried the same idempotency key
    if status == "succeeded":
        assert len(runs_of("echo", "c")) == 1
        assert len(receiver.applied) == 1 and await sink_rows(deps) == 1
    else:
        assert receiver.requests == [] and await sink_rows(deps) == 0


@pytest.mark.parametrize(
    "point", ["after_commit:c", "after_sink_intent:sink:crm", "after_sink_send:sink:crm"]
)
async def test_a_crash_around_the_sink_delivers_once(
    deps: Deps, make_plan: Any, sqlite_url: str, receiver: Receiver, point: str
) -> None:
    ended = await crash_and_resume(deps, make_plan, sqlite_url, "charge", point, receiver.url)
    assert ended.status == "succeeded", ended.error
    assert [len(runs_of(s, k)) for s, k in [("echo", "a"), ("charge", "b"), ("echo", "c")]] == [1, 1, 1]
    keys = {key for key, _ in receiver.requests}
    assert len(keys) == 1 and len(receiver.applied) == 1
    assert len(receiver.requests) == (2 if point.startswith("after_sink_send") else 1)
    assert await sink_rows(deps) == 1
