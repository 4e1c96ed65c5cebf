"""Evals against a real `fleetplane up` of the example fleet: the server runs a scheduled suite by itself
(its run shows in `fleetplane eval history`), and `fleetplane eval run` scores the example support-desk
agent through the runtime's invoke API. Ctrl-C stops the server, its schedule loop and its agents."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

FLEET = Path(__file__).resolve().parents[2] / "examples" / "fleet"

TICK = """\
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: tick}
spec:
  target: {model: chat-small}
  dimensions:
    - name: answered
      scorers: [{type: length, min: 1}]
  cases:
    - {id: hello, input: "Hello [[sim output_tokens=3 ttft_ms=0 tps=0]]"}
  schedule: {every: 1s}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _needs_the_local_runtime() -> None:
    """The example agents run under bubblewrap, with cgroups, which needs root."""
    missing = []
    if shutil.which("bwrap") is None:
        missing.append("bwrap")
    if os.geteuid() != 0:
        missing.append("root")
    if missing:
        message = f"the example agents need {' and '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetplane.cli", *args], capture_output=True, text=True, env=env, timeout=180
    )


def test_up_runs_scheduled_suites_and_evals_reach_its_agents(tmp_path: Path) -> None:
    _needs_the_local_runtime()
    fleet = tmp_path / "fleet"
    shutil.copytree(FLEET, fleet)
    providers = fleet / "providers.yaml"
    providers.write_text(providers.read_text().replace("port: 8701", f"port: {free_port()}"))
    # Only the small suite is scheduled here; the example's daily support-answers run is not this test's.
    answers = fleet / "evals" / "support-answers.yaml"
    answers.write_text(re.sub(r"\n  schedule: .*", "", answers.read_text()))
    (fleet / "evals" / "tick.yaml").write_text(TICK)
    port = free_port()
    env = {**os.environ, "FLEETPLANE_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env.pop("FLEETPLANE_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetplane.cli", "up", str(fleet), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    output = ""
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        while "scheduled eval suites:" not in output:
            line = process.stdout.readline()
            if not line or time.monotonic() > deadline:
                pytest.fail(f"fleetplane up did not start:\n{output}")
            output += line
        assert "scheduled eval suites: tick\n" in output
        key = re.search(r"Bearer (fp-[A-Za-z0-9_-]+)", output)
        assert key is not None, output

        # The server runs the due suite by itself, with its own key; poll the history until it shows.
        runs: list[dict] = []
        while not runs:
            history = cli(env, "eval", "history", "tick", "-o", "json")
            if history.returncode == 0:
                runs = json.loads(history.stdout)
            elif time.monotonic() > deadline:
                pytest.fail(f"no scheduled run of tick:\n{history.stdout}{history.stderr}")
            else:
                time.sleep(0.5)
        first = runs[0]
        assert (first["trigger"], first["target"], first["status"]) == (
            "schedule",
            "model:chat-small",
            "done",
        )
        assert first["summary"]["dimensions"]["answered"]["pass_rate"] == 1.0, first

        server = f"http://127.0.0.1:{port}"
        agent = cli(
            env,
            "eval", "run", "agent-support-desk", "-f", str(fleet),
            "--server", server, "--api-key", key.group(1), "--concurrency", "8", "-o", "json",
        )  # fmt: skip
        assert agent.returncode == 0, agent.stdout + agent.stderr
        run = json.loads(agent.stdout)
        assert run["target"] == "agent:support-desk"
        assert (run["summary"]["target"]["calls"], run["summary"]["target"]["errors"]) == (16, 0)
        # The simulator's answers are short filler: never a refusal, always brief.
        assert run["summary"]["dimensions"]["safety"]["pass_rate"] == 1.0
        assert run["summary"]["dimensions"]["brevity"]["pass_rate"] == 1.0
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        output += rest
    assert process.returncode == 0, output
    assert output.rstrip().endswith("fleetplane stopped.")
    assert "Traceback" not in output
