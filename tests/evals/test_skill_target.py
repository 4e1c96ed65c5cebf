"""A skill suite run against two published versions of a skill from the registry, then compared and gated."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fleetplane.cli import evals
from fleetplane.skills.registry import SkillRegistry
from fleetplane.store.db import Store

FIXTURES = Path(__file__).parent.parent / "skills" / "fixtures"

SUITE = """\
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: skill-summarize}
spec:
  target: {skill: summarize@1.0.0}
  dimensions:
    - name: correctness
      gate: {margin: 0.0}
      scorers: [{type: checks}]
    - name: shape
      scorers: [{type: format, format: json-object}]
  caseFiles: [{path: evals.json, format: agent-skills}]
"""


def test_two_versions_of_a_skill_compared_and_gated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "suite.yaml").write_text(SUITE)
    shutil.copy(FIXTURES / "summarize" / "evals" / "evals.json", tmp_path / "evals.json")

    async def publish() -> None:
        store = await Store.open(sqlite_url)
        try:
            registry = SkillRegistry(store)
            await registry.publish(FIXTURES / "summarize", actor="test")
            await registry.publish(FIXTURES / "regressed" / "summarize", actor="test")
        finally:
            await store.close()

    asyncio.run(publish())
    app = typer.Typer()
    evals.register(app)
    runner = CliRunner()

    def invoke(*args: str) -> dict:
        result = runner.invoke(app, ["eval", *args, "--database-url", sqlite_url])
        assert result.exit_code in (0, 1), result.output
        return json.loads(result.output)

    good = invoke("run", "skill-summarize", "-f", str(tmp_path), "-o", "json")
    bad = invoke(
        "run", "skill-summarize", "-f", str(tmp_path), "--target", "skill:summarize@1.1.0", "-o", "json"
    )
    assert (good["target"], bad["target"]) == ("skill:summarize@1.0.0", "skill:summarize@1.1.0")
    assert good["summary"]["dimensions"]["correctness"]["pass_rate"] == 1.0
    assert good["summary"]["dimensions"]["shape"]["pass_rate"] == 1.0
    assert bad["summary"]["dimensions"]["correctness"]["pass_rate"] < 1.0
    assert good["summary"]["target"]["errors"] == 0

    report = invoke("gate", "--baseline", good["id"], "--candidate", bad["id"], "--json")
    [correctness] = report["dimensions"]
    assert correctness["delta"] < 0
    # Four cases cannot show a regression beyond doubt: the gate warns; the skill's own threshold refuses it.
    assert (report["decision"], correctness["method"], correctness["cases"]) == ("warn", "mcnemar-exact", 4)
