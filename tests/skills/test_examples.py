"""The example fleet's skills are valid, pass their own unit tests and eval suites, and sign and publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetplane.cli.skill_author import _unit_tests
from fleetplane.skills.evalrun import run_suite
from fleetplane.skills.folder import read_folder
from fleetplane.skills.verify import load_folder

EXAMPLES = Path(__file__).parents[2] / "examples" / "fleet" / "skills"
OURS = ("classify-ticket", "send-refund", "summarize")

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("name", OURS)
def test_an_example_skill_is_valid_and_its_unit_tests_pass(name: str) -> None:
    folder = read_folder(EXAMPLES / name)
    assert folder.name == name and folder.tests
    assert _unit_tests(folder.path) == 0


async def test_the_python_examples_pass_their_evals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFUNDS_LEDGER", str(tmp_path / "refunds.jsonl"))
    for name in ("summarize", "send-refund"):
        skill = load_folder(EXAMPLES / name)
        report = await run_suite(skill, skill.evals)
        assert (name, report.score, report.passed) == (name, 1.0, True)


def test_the_examples_declare_what_the_issue_asks() -> None:
    refund = read_folder(EXAMPLES / "send-refund").contract
    assert (refund.effects.kind, refund.effects.at_most_once, refund.effects.reconcile) == (
        "external",
        True,
        "refunds:find",
    )
    rule = refund.tool("payments.refund")
    assert (
        rule is not None
        and rule.requires_approval({"amount": 250})
        and not rule.requires_approval({"amount": 20})
    )
    classify = read_folder(EXAMPLES / "classify-ticket")
    assert classify.contract.model == "chat-small"
