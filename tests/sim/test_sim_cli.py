"""`fleetplane sim` and `python -m fleetplane.sim`: useful help, clear config errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from fleetplane.cli.app import _register, app
from fleetplane.sim.config import from_mapping

runner = CliRunner()
_register()


def test_help_lists_the_options() -> None:
    result = runner.invoke(app, ["sim", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in (
        "--config",
        "--host",
        "--port",
        "--seed",
        "--ready-file",
        "--require-key",
        "--model",
        "--instant",
    ):
        assert option in result.output
    assert "[[sim output_tokens=50" in result.output
    assert "docs/sim.md" in result.output


def test_check_reports_bad_files_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  m:\n    limits: {rpm: lots}\n")
    result = runner.invoke(app, ["sim", "check", str(bad)])
    assert result.exit_code == 2
    assert f"error: {bad}:3: models.m.limits.rpm: Input should be a valid integer" in result.output
    assert "Traceback" not in result.output
    good = tmp_path / "good.yaml"
    good.write_text("models:\n  a: {}\n  b: {kind: embedding}\n")
    result = runner.invoke(app, ["sim", "check", str(good)])
    assert result.exit_code == 0
    assert result.output.strip() == f"{good}: ok, 2 model(s): a, b"


def test_serving_with_a_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: one\n")
    result = runner.invoke(app, ["sim", "--config", str(bad)])
    assert result.exit_code == 2
    assert "seed: Input should be a valid integer" in result.output


def test_default_config_round_trips() -> None:
    result = runner.invoke(app, ["sim", "default-config"])
    assert result.exit_code == 0
    config = from_mapping(yaml.safe_load(result.output))
    assert "sim-claude" in config.models


def test_module_entry_point_reports_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: {m: {kind: video}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "fleetplane.sim", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"error: {bad}:1: models.m.kind: Input should be 'chat' or 'embedding' (got 'video')"
    )
