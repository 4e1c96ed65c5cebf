"""`fleetplane up` with the bundled example fleet, as a user runs it: its own process, its own simulator."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

FLEET = Path(__file__).resolve().parents[2] / "examples" / "fleet"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fleet_copy(tmp_path: Path) -> Path:
    """The example fleet, with its simulator on a free port so a developer's own `up` does not clash."""
    target = tmp_path / "fleet"
    shutil.copytree(FLEET, target)
    providers = target / "providers.yaml"
    providers.write_text(providers.read_text().replace("port: 8701", f"port: {free_port()}"))
    return target


def test_up_serves_the_example_fleet_and_stops_cleanly(tmp_path: Path, fleet_copy: Path) -> None:
    port = free_port()
    env = {**os.environ, "FLEETPLANE_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env.pop("FLEETPLANE_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetplane.cli", "up", str(fleet_copy), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    output = ""
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while "Press Ctrl-C to stop." not in output:
            line = process.stdout.readline()
            if not line:
                pytest.fail(f"fleetplane up ended early:\n{output}")
            output += line
            if time.monotonic() > deadline:
                pytest.fail(f"fleetplane up did not start in time:\n{output}")
        key = re.search(r"Bearer (fp-[A-Za-z0-9_-]+)", output)
        assert key is not None, output
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/admin/ready", timeout=10).json()["models"] == 4

        client = openai.OpenAI(base_url=base + "/v1", api_key=key.group(1), max_retries=0)
        reply = client.chat.completions.with_raw_response.create(
            model="chat-large",
            messages=[{"role": "user", "content": "Hello [[sim output_tokens=5 ttft_ms=0 tps=0]]"}],
        )
        assert reply.headers["x-fleetplane-deployment"] == "sim/sim-large"
        assert reply.parse().usage.completion_tokens == 5  # type: ignore[union-attr]
        message = anthropic.Anthropic(base_url=base, api_key=key.group(1), max_retries=0).messages.create(
            model="claude",
            max_tokens=20,
            messages=[{"role": "user", "content": "Hi [[sim output_tokens=3 ttft_ms=0 tps=0]]"}],
        )
        assert message.usage.output_tokens == 3
        sim_pids = subprocess.run(
            ["pgrep", "-P", str(process.pid), "-f", "fleetplane.sim"], capture_output=True, text=True
        ).stdout.split()
        assert len(sim_pids) == 1  # one simulator shared by both sim providers
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
        output += rest
    assert process.returncode == 0, output
    assert "fleetplane stopped." in output
    assert "Traceback" not in output
    for pid in sim_pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )
    # the usage of both requests reached the ledger before the process ended
    usage = subprocess.run(
        [sys.executable, "-m", "fleetplane.cli", "usage", "--by", "model", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert '"chat-large"' in usage and '"claude"' in usage


def test_up_refuses_an_invalid_fleet_and_starts_nothing(tmp_path: Path, fleet_copy: Path) -> None:
    (fleet_copy / "broken.yaml").write_text(
        "apiVersion: fleetplane.dev/v1alpha1\nkind: Model\nmetadata: {name: bad}\nspec: {family: x}\n"
    )
    env = {**os.environ, "FLEETPLANE_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "fleetplane.cli", "up", str(fleet_copy), "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "broken.yaml:4:7: Model/bad: spec.contextWindow: required field is missing" in result.stderr
    assert "broken.yaml:4:7: Model/bad: spec.deployments: required field is missing" in result.stderr
    assert "nothing was applied or started" in result.stderr
    assert not (tmp_path / "home" / "fleetplane.db").exists()


def test_up_says_when_the_simulators_port_is_taken(tmp_path: Path, fleet_copy: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        providers = fleet_copy / "providers.yaml"
        providers.write_text(re.sub(r"port: \d+", f"port: {busy}", providers.read_text()))
        env = {**os.environ, "FLEETPLANE_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
        result = subprocess.run(
            [sys.executable, "-m", "fleetplane.cli", "up", str(fleet_copy), "--port", str(free_port())],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert (
        "error: could not start the model simulator: the simulator exited with status 1 before it was "
        f"ready:\nerror: cannot listen on 127.0.0.1:{busy}: Address already in use"
    ) in result.stderr
