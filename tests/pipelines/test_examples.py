"""The example fleet's pipelines, as the README runs them: the skills published from examples/fleet/skills,
refund-request paused at its approval gate and resumed, support-answer with RAG context and its router."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_cli_e2e import invoke, run_id
from typer.testing import CliRunner

from fleetplane.cli.app import _register

FLEET = Path(__file__).parents[2] / "examples/fleet"


@pytest.fixture(scope="module", autouse=True)
def registered() -> None:
    _register()


def refunds(tmp_path: Path, order: str) -> list[str]:
    """What the example payments ledger holds for `order` (publishing ran the skill's evals on others)."""
    path = tmp_path / "refunds.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [r["refundId"] for r in (json.loads(line)["refund"] for line in lines) if r["order"] == order]


def test_the_example_pipelines_run_as_the_readme_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("REFUNDS_LEDGER", str(tmp_path / "refunds.jsonl"))
    monkeypatch.setenv("FLEETPLANE_SINK_ROOT", str(tmp_path / "sinks"))
    cli = (CliRunner(), f"sqlite:///{tmp_path / 'db.sqlite'}", FLEET)
    for skill in ("summarize", "send-refund", "search-docs", "classify-ticket"):
        published = invoke(cli, "skill", "publish", str(FLEET / "skills" / skill))
        assert published.exit_code == 0, published.output
    body = '{"order": "ord-1042", "amount": 250, "text": "The blender arrived broken."}'
    waiting = invoke(cli, "run", "refund-request", "-f", str(FLEET), "--input", body)
    assert waiting.exit_code == 0 and ": waiting_approval" in waiting.output, waiting.output
    assert refunds(tmp_path, "ord-1042") == []  # nothing was refunded before the approval
    gate = re.search(r"waiting for approval ([0-9a-f]{32})", waiting.output)
    assert gate
    assert invoke(cli, "approvals", "approve", gate.group(1), "--actor", "ana").exit_code == 0
    done = invoke(cli, "runs", "resume", run_id(waiting))
    assert ": succeeded" in done.output, done.output
    assert refunds(tmp_path, "ord-1042") == ["rf-ord-1042"]  # exactly once
    filed = json.loads((tmp_path / "sinks/refunds/ord-1042.json").read_text())
    assert filed == {"refundId": "rf-ord-1042", "order": "ord-1042", "amount": 250, "status": "sent"}
    shown = json.loads(invoke(cli, "runs", "show", run_id(waiting), "--json").output)
    assert [(s["step_key"], s["state"], s["attempt"]) for s in shown["steps"]] == [
        ("summary", "committed", 1),
        ("refund", "committed", 1),
        ("sink:refunds-file", "committed", 1),
        ("sink:refunds-table", "committed", 1),
    ]

    answer = invoke(
        cli, "run", "support-answer", "-f", str(FLEET), "--input", '{"text": "My parcel is late"}'
    )
    assert ": succeeded" in answer.output, answer.output
    output = json.loads(invoke(cli, "runs", "show", run_id(answer), "--json").output)["output"]
    assert output["source"] == "shipping-delays" and output["route"] == "summarize"
    assert (
        output["why"] == "the LLM router could not choose: no gateway is configured (FLEETPLANE_GATEWAY_URL)"
    )
    assert output["answer"].startswith("Parcels usually arrive within 3 to 5 working days.")
