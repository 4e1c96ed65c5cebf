"""`fleetplane doctor` reports each check, really run, and exits 0 whatever works."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fleetplane.cli.app import _register, app


@pytest.mark.usefixtures("cgroups_ok")
def test_doctor_reports_tiers_and_why_not() -> None:
    _register()
    result = CliRunner().invoke(app, ["doctor", "--output", "json"])
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.output)}
    assert list(checks)[:3] == ["cgroups", "cgroup limits", "child subreaper"]
    assert {f"tier {t}" for t in ("process", "bwrap", "gvisor", "microvm")} <= set(checks)
    assert checks["tier process"]["ok"] is True
    assert checks["child subreaper"]["ok"] is True
    assert checks["tier microvm"]["ok"] is False and checks["tier microvm"]["detail"]
    assert checks["trust untrusted"]["detail"].startswith("refused: needs microvm")


def test_doctor_rejects_an_unknown_output() -> None:
    _register()
    result = CliRunner().invoke(app, ["doctor", "--output", "yaml"])
    assert result.exit_code == 2
    assert "--output 'yaml': expected table or json" in result.output
