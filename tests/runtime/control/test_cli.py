"""The agents' CLI without a server: bad input is one line and exit 2; no server (or no logs) exit 1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fleetplane.cli import agents


def run(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    agents.register(app)
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.fixture
def nobody() -> str:
    """A server address where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_bad_input(tmp_path: Path) -> None:
    assert run("rollout", "history", "bot", "--target", "kube") == (
        2,
        "error: --target 'kube': expected local or kubernetes\n",
    )
    assert run("invoke", "bot", "--data", "[1]") == (2, "error: --data must be a JSON object\n")
    assert run("invoke", "bot", "--data", "{") == (2, "error: --data is not JSON (line 1 column 2)\n")
    assert run("invoke", "bot", "-i", "x", "-o", "yaml") == (
        2,
        "error: --output 'yaml': expected text or json\n",
    )
    assert run("logs", "bot", "--tail", "-1") == (2, "error: --tail -1: expected 0 or more lines\n")
    code, output = run("logs", "bot", "--log-dir", str(tmp_path))
    assert (code, output) == (1, f"error: no logs for agent 'bot' in {tmp_path} (has it run on this host?)\n")


def test_no_server(nobody: str) -> None:
    code, output = run("agents", "list", "--server", nobody)
    assert code == 1 and output.startswith(f"error: no fleetplane server answers at {nobody} (")
    assert output.endswith("; start it with `fleetplane up`\n")
    code, output = run("rollout", "undo", "bot", "--server", nobody)
    assert code == 1 and output.startswith(f"error: no fleetplane server answers at {nobody} (")
    code, output = run("invoke", "bot", "-i", "hi", "--server", nobody)
    assert code == 1 and output.startswith(f"error: no fleetplane server answers at {nobody} (")


def test_agent_serve_without_a_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETPLANE_AGENT_SPEC", raising=False)
    assert run("agent", "serve") == (
        2,
        "error: $FLEETPLANE_AGENT_SPEC is not set: the runner serves a declarative Agent spec\n",
    )
