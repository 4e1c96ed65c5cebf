"""`fleetplane eval` end to end: a suite run through a real gateway (simulator upstream) over HTTP,
compared, gated and listed; and every bad input as one line with exit code 2."""

# ruff: noqa: E501  (expected output lines stay whole, as they are printed)

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from harness import GatewayUnderTest, start_gateway, write_fleet
from typer.testing import CliRunner, Result

from fleetplane.cli import evals, evals_online  # noqa: F401  (importing evals_online adds its commands)
from fleetplane.cli.evals_targets import TARGET_RUNNERS
from fleetplane.sim.process import SimProcess

SUITE = """
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: brief}
spec:
  target: {model: solo, maxTokens: 200}
  concurrency: 8
  dimensions:
    - name: brevity
      gate: {margin: 0.05}
      scorers: [{type: length, max: 22, unit: words}]
    - name: shape
      scorers: [{type: format, format: single-line}, {type: refusal}]
    - name: tokens
      goal: minimize
      scorers: [{type: tokens, which: output}]
    - name: cost
      goal: minimize
      scorers: [{type: cost}]
  caseFiles: [{path: cases.jsonl}]
  schedule: {every: 1h}
"""


@pytest.fixture
def fleet(tmp_path: Path, evals_sim: SimProcess) -> Iterator[tuple[Path, GatewayUnderTest]]:
    directory = write_fleet(tmp_path / "fleet", SUITE)
    lines = [json.dumps({"id": f"q{i}", "input": f"Question number {i}: what happened?"}) for i in range(60)]
    (directory / "cases.jsonl").write_text("\n".join(lines) + "\n")
    gateway = start_gateway(directory, f"sqlite:///{tmp_path / 'gw.db'}", evals_sim.base_url)
    try:
        yield directory, gateway
    finally:
        gateway.stop()


def _cli(monkeypatch: pytest.MonkeyPatch, database_url: str) -> tuple[typer.Typer, CliRunner]:
    monkeypatch.setenv("COLUMNS", "200")
    app = typer.Typer()
    evals.register(app)
    return app, CliRunner()


def test_run_compare_gate_and_history_through_a_real_gateway(
    fleet: tuple[Path, GatewayUnderTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, gateway = fleet
    app, runner = _cli(monkeypatch, gateway.database_url)
    common = ["--database-url", gateway.database_url]
    server = ["--fleet", str(directory), "--server", gateway.url, "--api-key", gateway.keys["full"]]

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["eval", *args, *common])

    first = invoke("run", "brief", *server, "--output", "json")
    assert first.exit_code == 0, first.output
    run_a = json.loads(first.output)
    assert (run_a["status"], run_a["target"], run_a["cases"], run_a["epochs"]) == (
        "done",
        "model:solo",
        60,
        1,
    )
    target = run_a["summary"]["target"]
    assert (target["calls"], target["errors"]) == (60, 0)
    # Cost from the gateway's usage x the Model's price ($1 in / $2 out per million), as the ledger charges.
    ledger = gateway.usage(at_least=60)
    assert len(ledger) == 60
    assert target["input_tokens"] == sum(r.input_tokens for r in ledger)
    assert target["output_tokens"] == sum(r.output_tokens for r in ledger)
    assert target["cost_usd"] == pytest.approx(float(sum(r.cost_usd for r in ledger)), rel=1e-9)
    dims = run_a["summary"]["dimensions"]
    assert dims["tokens"]["mean"] == pytest.approx(target["output_tokens"] / 60)
    assert dims["cost"]["unit"] == "raw" and dims["brevity"]["pass_method"] == "wilson"
    assert run_a["options"]["gates"] == {"brevity": {"margin": 0.05, "goal": "maximize"}}

    # The same suite against a model with longer answers (sim-large: ~30 tokens vs ~20).
    second = invoke("run", "brief", *server, "--target", "chain", "--output", "json")
    assert second.exit_code == 0, second.output
    run_b = json.loads(second.output)
    assert run_b["target"] == "model:chain"
    assert run_b["summary"]["dimensions"]["brevity"]["pass_rate"] < dims["brevity"]["pass_rate"]

    table = invoke("compare", run_a["id"][:10], run_b["id"][:10])
    assert table.exit_code == 0, table.output
    assert (
        "brevity" in table.output and "mcnemar-exact" in table.output and "paired-bootstrap" in table.output
    )

    gate = invoke("gate", "--baseline", run_a["id"], "--candidate", run_b["id"], "--json")
    assert gate.exit_code == 1, gate.output
    report = json.loads(gate.output)
    assert report["decision"] == "block"
    [brevity] = report["dimensions"]
    assert (brevity["dimension"], brevity["decision"], brevity["margin"]) == ("brevity", "block", 0.05)
    assert brevity["ci_high"] < -0.05
    assert (report["seed"], report["resamples"]) == (0, 10000)

    # A rerun of the same target passes the gate (the simulator is seeded: the same answers).
    third = invoke("run", "brief", *server, "--output", "json")
    run_c = json.loads(third.output)
    same = invoke("gate", "--baseline", run_a["id"], "--candidate", run_c["id"])
    assert same.exit_code == 0, same.output
    assert same.output.splitlines()[-1] == "gate: pass (seed 0, 10000 resamples)"

    history = invoke("history", "brief")
    assert history.exit_code == 0
    assert re.findall(r"model:\w+", history.output) == [
        "model:solo",
        "model:chain",
        "model:solo",
    ]

    scheduled = invoke("scheduled", *server)
    assert scheduled.exit_code == 0, scheduled.output
    assert re.fullmatch(r"ran brief -> model:solo: run [0-9a-f]{12}, score \d\.\d{3}\n", scheduled.output)
    assert invoke("scheduled", *server).output == "no scheduled suite is due\n"
    assert re.findall(r"model:\w+ +│ (\w+)", invoke("history", "brief").output) == ["manual"] * 3 + [
        "schedule"
    ]

    suites = invoke("suites", "--fleet", str(directory))
    assert suites.exit_code == 0, suites.output
    [row] = [line for line in suites.output.splitlines() if "brief" in line]
    assert re.sub(r"\s+", " ", row).startswith(
        "│ brief │ model:solo │ 1 file │ 1 │ brevity (gate 0.05), shape, tokens, cost │ every 1h │ "
    )

    printed = invoke("run", "brief", *server)
    assert printed.exit_code == 0, printed.output
    assert "brief -> model:solo" in printed.output
    assert "scoring heuristic: 180 items" in printed.output


def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    directory = write_fleet(tmp_path / "fleet", SUITE)
    (directory / "cases.jsonl").write_text('{"id": "a", "input": "x"}\n{"id": "b", "input": }\n')
    app, runner = _cli(monkeypatch, sqlite_url)

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["eval", *args, "--database-url", sqlite_url])

    unknown = invoke("run", "nope", "--fleet", str(directory))
    assert unknown.exit_code == 2
    assert unknown.output == f"error: no EvalSuite named 'nope' in {directory}; suites there: brief\n"

    bad_case = invoke("run", "brief", "--fleet", str(directory))
    assert bad_case.exit_code == 2
    assert bad_case.output == f"error: {directory}/cases.jsonl:2:22: not JSON: Expecting value\n"

    (directory / "cases.jsonl").write_text('{"id": "a", "input": "x"}\n')
    bad_target = invoke("run", "brief", "--fleet", str(directory), "--target", "robot:x")
    assert bad_target.exit_code == 2
    assert bad_target.output == (
        "error: --target 'robot:x': unknown kind 'robot'; expected model:NAME, agent:NAME, skill:NAME@VERSION or pipeline:NAME\n"
    )
    # As a bare `eval` group sees it, whatever another test registered before (the runners are global).
    monkeypatch.delitem(TARGET_RUNNERS, "pipeline", raising=False)
    pipeline = invoke("run", "brief", "--fleet", str(directory), "--target", "pipeline:triage")
    assert pipeline.output == (
        "error: cannot run pipeline targets: no pipeline runner is registered; use --target model:NAME or agent:NAME\n"
    )
    skill = invoke("run", "brief", "--fleet", str(directory), "--target", "skill:summarize")
    assert skill.output == "error: skill target 'summarize': expected NAME@VERSION, e.g. summarize@1.0.0\n"
    model = invoke("run", "brief", "--fleet", str(directory), "--target", "model:nope")
    assert (model.exit_code, model.output) == (
        2,
        "error: --target 'model:nope': no Model named 'nope' in the suite's fleet; known: cached, chain, claude, embed, rescue, solo, split (or agent:NAME, skill:NAME@VERSION, pipeline:NAME)\n",
    )
    version = invoke("run", "brief", "--fleet", str(directory), "--target", "skill:summarize@x.y")
    assert (version.exit_code, version.output) == (
        2,
        "error: skill target 'summarize@x.y': 'x.y' is not a semantic version such as 1.2.0, e.g. summarize@1.0.0\n",
    )
    unpublished = invoke("run", "brief", "--fleet", str(directory), "--target", "skill:summarize@9.0.0")
    assert (unpublished.exit_code, unpublished.output) == (
        2,
        "error: skill target 'summarize@9.0.0': skill summarize@9.0.0 is not published; no version of it is published\n",
    )
    assert invoke("history", "brief").output.startswith("error: no runs of suite 'brief'")  # none stored

    missing = invoke("gate", "--baseline", "abcd1234", "--candidate", "ffff0000")
    assert missing.exit_code == 2
    assert (
        missing.output
        == "error: eval run 'abcd1234' does not exist; `fleetplane eval history SUITE` lists runs\n"
    )

    empty = invoke("history", "brief")
    assert empty.exit_code == 1
    assert empty.output == "error: no runs of suite 'brief'; start one with `fleetplane eval run brief`\n"

    gone = invoke("scheduled", "--fleet", str(tmp_path / "gone"))
    assert (gone.exit_code, gone.output) == (2, f"error: no such file or directory: {tmp_path / 'gone'}\n")

    none = invoke("suites", "--fleet", str(tmp_path / "gone"))
    assert (none.exit_code, none.output) == (2, f"error: no such file or directory: {tmp_path / 'gone'}\n")

    duration = "error: --since 'soon': expected a duration: a number of seconds or a string like '500ms', '30s', '5m', '1h30m', '2d'\n"
    online = invoke("online", "--since", "soon")
    assert (online.exit_code, online.output) == (2, duration)
    ab = invoke("ab", "report", "--test", "t", "--a", "model:solo", "--b", "model:chain", "--since", "soon")
    assert (ab.exit_code, ab.output) == (2, duration)

    bad_output = invoke("history", "brief", "--output", "xml")
    assert (bad_output.exit_code, bad_output.output) == (
        2,
        "error: unknown output 'xml'; expected table or json\n",
    )
    # A target every call of which fails is run and stored, but the command says why and exits 1.
    down = invoke(
        "run", "brief", "--fleet", str(directory), "--target", "agent:x", "--server", "http://127.0.0.1:9"
    )
    assert down.exit_code == 1, down.output
    assert down.output.splitlines()[-1].startswith("error: every call to the target failed; the first: ")


JUDGED = """
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: judged}
spec:
  target: {model: solo}
  judge: chain
  dimensions:
    - name: quality
      scorers: [{type: llm-rubric, rubric: "Is it helpful?"}]
  cases: [{id: a, input: hi}]
"""


def test_a_same_family_judge_is_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    directory = write_fleet(tmp_path / "fleet", JUDGED)
    app, runner = _cli(monkeypatch, sqlite_url)
    result = runner.invoke(app, ["eval", "run", "judged", "-f", str(directory), "--database-url", sqlite_url])
    assert result.exit_code == 2
    assert result.output == (
        f"error: {directory}/fleet.yaml:119:17: EvalSuite/judged: spec.dimensions[0].scorers[0].judge: judge 'chain' "
        "is of family 'sim-gpt', the same as target 'solo': judges favour their own family's answers; pick a judge "
        "of another family or set allowSameFamilyJudge: true\n"
    )
