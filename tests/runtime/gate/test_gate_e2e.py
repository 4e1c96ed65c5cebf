"""End to end through `fleetplane up` with the real supervisor (process tier): an agent whose spec names a
rollout gate; a revision whose answers regress on its eval suite is blocked — the surge replica removed,
the old revision serving every invoke, `rollout status` saying why and exiting 1 — and a later revision
that answers as well as the serving one rolls out."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from fleetplane.cli import agents as agents_cli

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CASES = 30

FLEET = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {name: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {name: support}
spec: {organization: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: bot-answers}
spec:
  target: {agent: bot}
  concurrency: 8
  dimensions:
    - name: correctness
      gate: {margin: 0.05}
      scorers: [{type: exact}]
  cases:
"""
AGENT = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Agent
metadata: {name: bot}
spec:
  run: {command: [python, app.py], workdir: bot}
  replicas: {min: 2, max: 2}
  trust: trusted
  isolation: process
  resources: {cpu: 500m, memory: 256Mi, pids: 64, disk: 16Mi}
  env: {MODE: MODE_VALUE, BUILD: "BUILD_VALUE"}
  probes:
    readiness: {http: {path: /healthz}, period: 0.2s}
  rollout:
    gate: {suite: bot-answers}
"""
APP = """\
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200 if self.path == "/healthz" else 404, {"ok": True})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        question = body["message"]["parts"][0]["text"]
        answer = "a" + question[1:] if os.environ["MODE"] == "good" else "I am not sure."
        self._send(200, {"kind": "task", "id": body["taskId"], "status": {"state": "completed"},
                         "artifacts": [{"parts": [{"kind": "text", "text": answer}]}]})


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def _require_runtime() -> None:
    why = None
    if os.geteuid() != 0:
        why = "the rollout gate e2e needs root (the supervisor's cgroups)"
    else:
        from fleetplane.runtime.cgroups import CgroupError, detect

        try:
            detect()
        except CgroupError as exc:
            why = f"no usable cgroups: {exc}"
    if why is not None:
        if IN_CI:
            pytest.fail(f"CI=true and {why}")
        pytest.skip(why)


@dataclass
class Server:
    url: str
    fleet: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def get(self, path: str) -> Any:
        return httpx.get(self.url + path, timeout=10).json()

    def until(self, what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"fleetplane up exited ({self.process.returncode}) waiting for {what}")
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: {self.get('/admin/agents/bot/rollout')}")

    def rollout(self, status: str, revision: int) -> dict[str, Any]:
        def reached() -> Any:
            report = self.get("/admin/agents/bot/rollout")
            return report if (report["status"], report["revision"]) == (status, revision) else None

        return dict(self.until(f"revision {revision} {status}", reached))

    def apply(self, mode: str, build: str) -> None:
        write_agent(self.fleet, mode, build)
        done = subprocess.run(
            [sys.executable, "-m", "fleetplane.cli", "apply", str(self.fleet)],
            env=self.env,
            capture_output=True,
        )
        assert done.returncode == 0, done.stderr.decode()

    def invoke(self) -> httpx.Response:
        body = {"message": {"role": "user", "parts": [{"kind": "text", "text": "q1"}]}}
        return httpx.post(f"{self.url}/agents/bot/invoke", json=body, timeout=30)


def write_agent(fleet: Path, mode: str, build: str) -> None:
    (fleet / "agent.yaml").write_text(AGENT.replace("MODE_VALUE", mode).replace("BUILD_VALUE", build))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    _require_runtime()
    fleet, home = tmp_path / "fleet", tmp_path / "home"
    (fleet / "bot").mkdir(parents=True)
    (fleet / "bot" / "app.py").write_text(APP)
    cases = "".join(f"    - {{id: c{i}, input: q{i}, expected: a{i}}}\n" for i in range(CASES))
    (fleet / "fleet.yaml").write_text(FLEET + cases)
    write_agent(fleet, "good", "1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FLEETPLANE_HOME": str(home), "FLEETPLANE_INVOKE_WAIT": "15"}
    for name in ("FLEETPLANE_DATABASE_URL", "FLEETPLANE_REDIS_URL", "FLEETPLANE_ADMIN_TOKEN"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetplane.cli", "up", str(fleet), "--port", str(port), "--no-telemetry"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    running = Server(f"http://127.0.0.1:{port}", fleet, env, process)
    try:
        running.until("the server", lambda: _answers(running.url), timeout=60)
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/admin/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def cli() -> Callable[..., Any]:
    app = typer.Typer()
    agents_cli.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_a_regressed_revision_is_blocked_and_a_sound_one_rolls_out(server: Server) -> None:
    first = server.rollout("complete", 1)
    assert first["gate"] is None  # the first revision has nothing to be compared with
    serving = {r["id"] for r in server.get("/admin/agents/bot")["replicas"]}

    server.apply("bad", "2")  # answers every case wrong
    blocked = server.rollout("blocked", 3)  # revision 3: the serving spec again, rolled back by the block
    assert blocked["gate"]["state"] == "blocked" and blocked["gate"]["baseline"] == 1
    assert blocked["message"].startswith(
        "revision 2 blocked by its rollout gate (bot-answers): regresses on correctness 1.00 -> 0.00, "
    )
    assert blocked["message"].endswith("; revision 1 keeps serving as revision 3 (2 ready)")
    assert [(h["revision"], h["cause"]) for h in blocked["history"]] == [(2, "apply"), (3, "undo")]

    def only_old() -> Any:
        report = server.get("/admin/agents/bot")
        return report if len(report["replicas"]) == 2 else None

    report = server.until("the surge replica to be removed", only_old)
    assert {r["id"] for r in report["replicas"]} == serving  # the old revision kept serving throughout
    answers = [server.invoke() for _ in range(4)]
    assert [
        (a.status_code, a.headers["x-fleetplane-revision"], a.json()["artifacts"][0]["parts"][0]["text"])
        for a in answers
    ] == [(200, "1", "a1")] * 4
    status = cli()("rollout", "status", "bot", "--server", server.url)
    assert status.exit_code == 1
    assert status.output.startswith("agent bot: revision 3 blocked: revision 2 blocked by its rollout gate")
    # Both runs are stored: `eval compare` shows them, paired by case.
    baseline_run, candidate_run = re.search(r"\(runs (\w+) -> (\w+)\)", blocked["message"]).groups()  # type: ignore[union-attr]
    compared = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetplane.cli",
            "eval",
            "compare",
            baseline_run,
            candidate_run,
            "-o",
            "json",
        ],
        env=server.env,
        capture_output=True,
    )
    assert compared.returncode == 0, compared.stderr.decode()
    assert len(json.loads(compared.stdout)["changed"]) == CASES

    server.apply("good", "4")  # a fixed revision: as good as the serving one
    done = server.rollout("complete", 4)
    # The serving replicas were started as revision 1 (revision 3 is their spec again): pinned as 1.
    assert done["gate"]["state"] == "passed" and done["gate"]["baseline"] == 1
    final = server.get("/admin/agents/bot")
    assert [r["revision"] for r in final["replicas"]] == [4, 4]
    assert server.invoke().headers["x-fleetplane-revision"] == "4"
