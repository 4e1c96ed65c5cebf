"""End to end through `fleetplane up` with the real supervisor and bubblewrap: the example's
bring-your-own agent (2 replicas, openai SDK) and a declarative agent, invoked through fleetplane and
charged to their own keys; a SIGKILLed replica heals while traffic flows; a revision whose startup probe
fails never takes traffic and `rollout undo` restores the previous one; the CLI on the live server.

One server for the module (starting sandboxes is the slow part); the tests run in file order, the
rollout last because it changes the fleet.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
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
EXAMPLE_AGENT = Path(__file__).resolve().parents[3] / "examples" / "fleet" / "agents" / "support-desk"
INSTRUCTIONS = "You answer questions about Acme's products in at most two sentences."

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
kind: Provider
metadata: {name: sim}
spec: {type: sim, sim: {config: sim-config.yaml}}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: chat-small}
spec:
  family: sim-gpt
  contextWindow: 32000
  price: {input: 1.0, output: 2.0}
  deployments: [{provider: sim, model: sim-small}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: Quota
metadata: {name: each-agent}
spec:
  target: {agent: "*"}
  limits: {tpm: 100000}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Agent
metadata: {name: faq}
spec:
  declarative:
    model: chat-small
    instructions: "{instructions}"
    instructionsVersion: "3"
    maxSteps: 2
    maxTokens: 256
  resources: {cpu: 500m, memory: 256Mi, pids: 64, disk: 16Mi}
"""

SUPPORT_DESK = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Agent
metadata: {name: support-desk}
spec:
  run: {command: [python, app.py], workdir: "{workdir}"}
  replicas: {min: 2, max: 2}
  isolation: bwrap
  resources: {cpu: 500m, memory: 256Mi, pids: 64, disk: 16Mi}
  env: {MODEL: chat-small}
  probes:
    startup: {http: {path: "{startup}"}, period: 0.2s, failureThreshold: {threshold}}
    readiness: {http: {path: /healthz}, period: 0.5s}
"""


def _require_sandbox() -> None:
    why = None
    if os.geteuid() != 0:
        why = "the agent e2e tests need root (cgroups and bwrap as root)"
    elif shutil.which("bwrap") is None:
        why = "bubblewrap is not installed (apt-get install bubblewrap; scripts/_setup.sh does)"
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
    home: Path
    fleet: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def get(self, path: str) -> Any:
        return httpx.get(self.url + path, timeout=10).json()

    def invoke(self, agent: str, text: str) -> httpx.Response:
        body = {"message": {"role": "user", "parts": [{"kind": "text", "text": text}]}}
        return httpx.post(f"{self.url}/agents/{agent}/invoke", json=body, timeout=30)

    def until(self, what: str, check: Callable[[], Any], timeout: float = 45.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"fleetplane up exited ({self.process.returncode}) waiting for {what}")
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: {self.get('/admin/agents')}")

    def complete(self, agent: str, revision: int | None = None) -> dict[str, Any]:
        def done() -> Any:
            report = self.get(f"/admin/agents/{agent}")
            ok = report.get("status") == "complete" and (revision is None or report["revision"] == revision)
            return report if ok else None

        return dict(self.until(f"agent {agent} complete", done))

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home / "fleetplane.db") as db:
            return list(db.execute(query, args))


def write_agent(fleet: Path, startup: str, threshold: int = 25) -> None:
    text = SUPPORT_DESK.replace("{workdir}", str(EXAMPLE_AGENT)).replace("{startup}", startup)
    text = text.replace("{threshold}", str(threshold))
    (fleet / "support-desk.yaml").write_text(text)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _require_sandbox()
    root = tmp_path_factory.mktemp("agents-e2e")
    fleet, home = root / "fleet", root / "home"
    fleet.mkdir()
    (fleet / "fleet.yaml").write_text(FLEET.replace("{instructions}", INSTRUCTIONS))
    (fleet / "sim-config.yaml").write_text("seed: 5\ninstant: true\nmodels: {sim-small: {}}\n")
    write_agent(fleet, "/healthz")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "FLEETPLANE_HOME": str(home),
        "FLEETPLANE_RESTART_BACKOFF": "0.3",
        "FLEETPLANE_INVOKE_WAIT": "15",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY",
    }
    for name in ("FLEETPLANE_DATABASE_URL", "FLEETPLANE_REDIS_URL", "FLEETPLANE_ADMIN_TOKEN"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetplane.cli", "up", str(fleet), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    running = Server(f"http://127.0.0.1:{port}", home, fleet, env, process)
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


def test_a_bring_your_own_agent_with_two_replicas_is_charged_to_its_own_key(server: Server) -> None:
    report = server.complete("support-desk")
    replicas = {r["id"] for r in report["replicas"]}
    assert len(replicas) == 2 and report["ready"] == 2
    answers = [server.invoke("support-desk", f"Where is order {i}?") for i in range(4)]
    assert [a.status_code for a in answers] == [200] * 4
    assert {a.headers["x-fleetplane-replica"] for a in answers} == replicas  # both replicas served
    task = answers[0].json()
    assert task["status"] == {"state": "completed"} and task["artifacts"][0]["parts"][0]["text"]
    assert task["metadata"]["model"]  # the openai SDK's reply came from the gateway's simulator

    def charged() -> list[tuple[Any, ...]]:
        httpx.post(server.url + "/admin/gateway/flush", timeout=10)  # records are queued after the answer
        rows = server.sql(
            "SELECT u.team, u.agent, u.status, k.name, k.source FROM usage_records u "
            "JOIN virtual_keys k ON u.key_id = k.id WHERE u.agent = 'support-desk'"
        )
        return rows if len(rows) >= 4 else []

    rows = server.until("4 usage records", charged)
    assert rows == [("support", "support-desk", 200, "agent:support-desk", "runtime")] * 4
    quotas = {q["subject"]: q for q in server.get("/admin/quotas")["quotas"]}
    used = {limit["name"]: limit["used"] for limit in quotas["agent=support-desk"]["limits"]}
    assert used["tpm"] > 0  # its own quota scope was charged


def test_the_declarative_agent_answers_through_the_gateway_with_its_versioned_instructions(
    server: Server,
) -> None:
    server.complete("faq")
    answer = server.invoke("faq", "What does Acme sell?")
    assert answer.status_code == 200, answer.text
    task = answer.json()
    assert task["status"] == {"state": "completed"}
    assert task["metadata"]["instructionsVersion"] == "3" and task["metadata"]["steps"] == 1
    assert task["artifacts"][0]["parts"][0]["text"]
    trace_id = answer.headers["traceparent"].split("-")[1]
    spans = server.until(
        "the invoke_agent span and the gateway's span under it",
        lambda: (
            rows
            if len(
                rows := server.sql(
                    "SELECT name, span_id, parent_span_id, agent, prompt_name, prompt_version, request_model "
                    "FROM telemetry_spans WHERE trace_id = ? ORDER BY start_ns",
                    trace_id,
                )
            )
            == 2
            else None
        ),
    )
    invoke, chat = spans
    assert invoke[0] == "invoke_agent faq" and invoke[3] == "faq"
    assert chat[2] == invoke[1]  # the agent's model call is a child of the server's invoke_agent span
    assert chat[3:] == ("faq", "faq", "3", "chat-small")  # charged to the agent; the instructions' version
    events = server.until(
        "the captured prompt",
        lambda: server.sql("SELECT attributes FROM telemetry_events WHERE trace_id = ?", trace_id),
    )
    sent = json.loads(events[0][0])["gen_ai.input.messages"]
    assert sent[0] == {"role": "system", "parts": [{"type": "text", "content": INSTRUCTIONS}]}


def test_a_sigkilled_replica_is_replaced_while_traffic_keeps_flowing(server: Server) -> None:
    report = server.complete("support-desk")
    victim = report["replicas"][0]
    os.kill(victim["pid"], signal.SIGKILL)
    answers = [server.invoke("support-desk", "still there?") for _ in range(8)]
    assert [a.status_code for a in answers] == [200] * 8

    def healed() -> Any:
        now = server.get("/admin/agents/support-desk")
        mine = [r for r in now["replicas"] if r["id"] == victim["id"]]
        return now if now["status"] == "complete" and mine and mine[0]["restarts"] >= 1 else None

    after = server.until("the killed replica back", healed)
    killed = next(r for r in after["replicas"] if r["id"] == victim["id"])
    assert killed["state"] == "ready" and killed["pid"] != victim["pid"]
    assert killed["last_exit"]["reason"] == "Signal" and killed["last_exit"]["signal"] == "SIGKILL"


def cli() -> Callable[..., Any]:
    app = typer.Typer()
    agents_cli.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_the_cli_against_the_live_server(server: Server) -> None:
    run = cli()
    invoked = run("invoke", "support-desk", "--input", "hello", "--server", server.url)
    assert invoked.exit_code == 0 and "(replica support-desk-" in invoked.output
    listed = run("agents", "list", "--server", server.url)
    assert listed.exit_code == 0 and "support-desk" in listed.output and "2/2" in listed.output
    logs = run("logs", "support-desk", "--tail", "50", "--log-dir", str(server.home / "runtime" / "logs"))
    assert logs.exit_code == 0 and "POST /invoke" in logs.output and " r1 | " in logs.output
    nothing = run("invoke", "support-desk", "--server", server.url)
    assert (nothing.exit_code, nothing.output) == (
        2,
        "error: nothing to send: give --input TEXT and/or --data JSON\n",
    )
    unknown = run("rollout", "undo", "nobody", "--server", server.url)
    assert (unknown.exit_code, unknown.output) == (1, "error: no agent named 'nobody' is applied\n")
    bad = run("rollout", "undo", "support-desk", "--to-revision", "x", "--server", server.url)
    assert bad.exit_code == 2 and bad.output.startswith(
        "error: --to-revision 'x': expected a revision number"
    )
    missing = run(
        "logs", "support-desk", "--replica", "nope", "--log-dir", str(server.home / "runtime" / "logs")
    )
    assert missing.exit_code == 1 and "has no replica 'nope'" in missing.output


def test_a_revision_whose_startup_probe_fails_never_takes_traffic_and_undo_restores(server: Server) -> None:
    before = server.complete("support-desk", revision=1)
    good = {r["id"] for r in before["replicas"]}
    write_agent(server.fleet, "/missing", threshold=3)
    applied = subprocess.run(
        [sys.executable, "-m", "fleetplane.cli", "apply", str(server.fleet)],
        env=server.env,
        capture_output=True,
    )
    assert applied.returncode == 0, applied.stderr.decode()

    def failing() -> Any:
        report = server.get("/admin/agents/support-desk")
        new = [r for r in report["replicas"] if r["revision"] == 2]
        return report if new and new[0]["restarts"] >= 1 else None

    report = server.until("the new revision's replica to fail its startup probe", failing)
    assert report["status"] == "progressing" and report["ready"] == 2
    assert len([r for r in report["replicas"] if r["revision"] == 2]) == 1  # surge 1: one broken replica only
    answers = [server.invoke("support-desk", "which revision?") for _ in range(6)]
    assert [(a.status_code, a.headers["x-fleetplane-revision"]) for a in answers] == [(200, "1")] * 6
    undone = cli()("rollout", "undo", "support-desk", "--server", server.url)
    assert undone.exit_code == 0 and "is now revision 3" in undone.output
    after = server.complete("support-desk", revision=3)
    assert {r["id"] for r in after["replicas"]} == good  # the old replicas kept serving throughout
    history = server.get("/admin/agents/support-desk/rollout")
    assert [(h["revision"], h["cause"]) for h in history["history"]] == [(2, "apply"), (3, "undo")]
    assert history["drift"] is True
