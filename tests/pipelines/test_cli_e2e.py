"""End to end through the CLI with the real skills catalog: publish a skill, run a pipeline with RAG
context, inspect it, approve, resume, hot-swap with a run in flight, verify the audit log — and every bad
input answered with one line and exit code 2."""

# ruff: noqa: E501  (expected output lines stay whole, as they are printed)

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import typer
from sqlalchemy import Column, MetaData, String, Table, insert
from typer.testing import CliRunner, Result

from fleetplane.cli.app import _register, app
from fleetplane.cli.ids import resolve_id
from fleetplane.store.db import Store

EXAMPLE_SKILL = Path(__file__).parents[2] / "examples/fleet/skills/search-docs"

PIPELINE = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Pipeline
metadata: {name: ask}
spec:
  trigger:
    input: {type: object, required: [question]}
  context:
    retrieve:
      - {name: docs, skill: search-docs@^1, query: "{{ input.question }}", top_k: 2}
  execute:
    - id: pick
      skill: search-docs@^1
      input: {query: "{{ context.docs.passages[0].title }}", top_k: 1}
      approval: {when: "input.careful"}
  output: "{{ steps.pick.output.passages[0].id }}"
"""


@pytest.fixture(scope="module", autouse=True)
def registered() -> None:
    _register()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, str, Path]:
    monkeypatch.setenv("COLUMNS", "250")  # rich tables would cut ids at 80 columns
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "ask.yaml").write_text(PIPELINE)
    return CliRunner(), url, plans


def invoke(cli: tuple[CliRunner, str, Path], *args: str) -> Result:
    runner, url, _ = cli
    return runner.invoke(app, [*args, "--database-url", url])


def run_id(result: Result) -> str:
    found = re.search(r"run ([0-9a-f]{32})", result.output)
    assert found, result.output
    return found.group(1)


def test_run_inspect_approve_resume_and_verify(cli: tuple[CliRunner, str, Path]) -> None:
    plans = str(cli[2])
    assert invoke(cli, "skill", "publish", str(EXAMPLE_SKILL)).exit_code == 0
    done = invoke(cli, "run", "ask", "-f", plans, "--input", '{"question": "my parcel is late"}')
    assert done.exit_code == 0, done.output
    assert re.search(r"run [0-9a-f]{32} \(ask\): succeeded", done.output)
    shown = invoke(cli, "runs", "show", run_id(done), "--json")
    assert shown.exit_code == 0
    assert '"output": "shipping-delays"' in shown.output
    assert '"state": "committed"' in shown.output and '"kind": "retrieval"' in shown.output

    waiting = invoke(
        cli, "run", "ask", "-f", plans, "--input", '{"question": "refund window", "careful": true}'
    )
    assert waiting.exit_code == 0 and ": waiting_approval" in waiting.output
    gate = re.search(r"waiting for approval ([0-9a-f]{32})", waiting.output)
    assert gate, waiting.output
    listed = invoke(cli, "approvals", "list")
    assert gate.group(1) in listed.output
    approved = invoke(cli, "approvals", "approve", gate.group(1), "--actor", "ana")
    assert approved.exit_code == 0 and f"approval {gate.group(1)}: approved by ana" in approved.output
    resumed = invoke(cli, "runs", "resume", run_id(waiting))
    assert resumed.exit_code == 0 and ": succeeded" in resumed.output, resumed.output
    journal = invoke(cli, "runs", "show", run_id(waiting), "--json").output
    assert journal.count('"attempt": 1') == 2  # context:docs and pick, each run exactly once

    verified = invoke(cli, "audit", "verify")
    assert verified.exit_code == 0 and "audit log: intact" in verified.output


def test_a_promotion_leaves_a_run_in_flight_on_its_pinned_version(
    cli: tuple[CliRunner, str, Path], tmp_path: Path
) -> None:
    plans = str(cli[2])
    newer = tmp_path / "search-docs"
    shutil.copytree(EXAMPLE_SKILL, newer)
    for name in ("SKILL.md", "skill.yaml"):
        path = newer / name
        path.write_text(path.read_text().replace('version: "1.0.0"', 'version: "1.1.0"'))
    assert invoke(cli, "skill", "publish", str(EXAMPLE_SKILL)).exit_code == 0
    assert invoke(cli, "skill", "promote", "search-docs@1.0.0").exit_code == 0
    first = invoke(cli, "run", "ask", "-f", plans, "--input", '{"question": "broken item", "careful": true}')
    assert ": waiting_approval" in first.output
    assert invoke(cli, "skill", "publish", str(newer)).exit_code == 0
    promoted = invoke(cli, "skill", "promote", "search-docs@1.1.0")
    assert promoted.exit_code == 0, promoted.output
    second = invoke(cli, "run", "ask", "-f", plans, "--input", '{"question": "invoice"}')
    assert ": succeeded" in second.output
    gate = re.search(r"waiting for approval ([0-9a-f]{32})", first.output)
    assert gate
    invoke(cli, "approvals", "approve", gate.group(1))
    assert ": succeeded" in invoke(cli, "runs", "resume", run_id(first)).output
    old = invoke(cli, "runs", "show", run_id(first), "--json").output
    new = invoke(cli, "runs", "show", run_id(second), "--json").output
    assert '"skill": "search-docs@1.0.0"' in old and "search-docs@1.1.0" not in old
    assert '"skill": "search-docs@1.1.0"' in new


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope", "-f", "{plans}"], "error: no Pipeline named 'nope' (known: ask)"),
        (
            ["run", "ask", "-f", "{plans}", "--input", "{bad"],
            'error: --input: not valid JSON (unexpected character, expected a string key: line 1 column 2 (char 1)); expected e.g. \'{"order_id": "A-1"}\' or @file.json',
        ),
        (
            ["run", "ask", "-f", "{plans}", "--input", "@/nonexistent.json"],
            "error: --input: cannot read /nonexistent.json: No such file or directory",
        ),
        (
            ["run", "ask", "-f", "{plans}", "--input", "{}"],
            "error: input of pipeline ask: at (root): 'question' is a required property",
        ),
        (
            ["run", "ask", "-f", "{plans}", "--input", '{"question": "x"}'],
            "error: pipeline ask: skill search-docs@^1: no published version of skill search-docs satisfies '^1' (published: none)",
        ),
        (
            ["run", "ask", "-f", "/nonexistent-fleet", "--input", "{}"],
            "error: --file: no such file or directory: /nonexistent-fleet; expected the directory of the fleet's manifests",
        ),
        (["runs", "show", "r-1"], "error: no run r-1"),
        (["runs", "resume", "r-1"], "error: no run r-1"),
        (["approvals", "approve", "a-1"], "error: no approval a-1"),
        (
            ["approvals", "approve", "a-1", "--edit", "[1]"],
            "error: approval a-1: the edited arguments must be a JSON object, not list",
        ),
        (["runs", "cancel", "r-1"], "error: no run r-1"),
        (
            ["runs", "list", "--status", "done"],
            "error: --status 'done': expected one of cancelled, failed, needs_attention, pending, running, succeeded, waiting_approval",
        ),
        (
            ["runs", "prune", "--older-than", "soon"],
            "error: --older-than: expected a duration: a number of seconds or a string like '500ms', '30s', '5m', '1h30m', '2d'",
        ),
    ],
)
def test_bad_input_gets_one_line_and_exit_code_2(
    cli: tuple[CliRunner, str, Path], args: list[str], message: str
) -> None:
    result = invoke(cli, *[a.replace("{plans}", str(cli[2])) for a in args])
    assert (result.exit_code, result.output.strip().replace("\n", " ")) == (2, message)


def test_a_pipeline_that_requires_signed_skills_refuses_an_unsigned_one(
    cli: tuple[CliRunner, str, Path],
) -> None:
    signed_only = PIPELINE.replace("metadata: {name: ask}", "metadata: {name: ask-signed}").replace(
        "spec:\n", "spec:\n  policy: {requireSigned: true}\n", 1
    )
    (cli[2] / "ask-signed.yaml").write_text(signed_only)
    assert invoke(cli, "skill", "publish", str(EXAMPLE_SKILL)).exit_code == 0
    refused = invoke(cli, "run", "ask-signed", "-f", str(cli[2]), "--input", '{"question": "late parcel"}')
    assert refused.exit_code == 1
    assert refused.output.splitlines()[1:] == [
        "error: step context:docs: cannot load search-docs@1.0.0: search-docs@1.0.0 is not signed (no "
        "skill.dsse.json) and signing is required"
    ]


def test_ids_cut_by_a_narrow_table_can_be_given_by_a_unique_prefix(cli: tuple[CliRunner, str, Path]) -> None:
    plans = str(cli[2])
    assert invoke(cli, "skill", "publish", str(EXAMPLE_SKILL)).exit_code == 0
    runs = [
        invoke(cli, "run", "ask", "-f", plans, "--input", '{"question": "late", "careful": true}')
        for _ in range(2)
    ]
    gate = re.search(r"waiting for approval ([0-9a-f]{32})", runs[0].output)
    assert gate
    approved = invoke(cli, "approvals", "approve", gate.group(1)[:8], "--actor", "ana")
    assert (approved.exit_code, approved.output.splitlines()[0]) == (
        0,
        f"approval {gate.group(1)}: approved by ana",
    )
    first = run_id(runs[0])
    resumed = invoke(cli, "runs", "resume", first[:6])
    assert resumed.exit_code == 0 and f"run {first} (ask): succeeded" in resumed.output
    assert invoke(cli, "runs", "show", first[:5]).output.startswith(f"run {first}  pipeline ask")
    # a prefix shorter than 4 characters is taken as a whole id; one that fits two ids is refused
    assert invoke(cli, "runs", "show", first[:3]).output.strip() == f"error: no run {first[:3]}"


@pytest.mark.anyio
async def test_an_ambiguous_prefix_is_refused_with_the_ids_it_fits(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'ids.sqlite'}", run_migrations=False)
    table = Table("things", MetaData(), Column("id", String, primary_key=True))
    try:
        async with store.engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
            await conn.execute(insert(table), [{"id": "abcd1111"}, {"id": "abcd2222"}, {"id": "ab%d3333"}])
        assert await resolve_id(store, table.c.id, "abcd2", "thing") == "abcd2222"
        assert await resolve_id(store, table.c.id, "ab%d", "thing") == "ab%d3333"  # % is not a wildcard
        assert await resolve_id(store, table.c.id, "zzzz", "thing") == "zzzz"
        with pytest.raises(typer.Exit) as ended:
            await resolve_id(store, table.c.id, "abcd", "thing")
        assert ended.value.exit_code == 2
    finally:
        await store.close()


def test_a_dedupe_key_reused_with_another_input_is_refused(cli: tuple[CliRunner, str, Path]) -> None:
    plans = str(cli[2])
    assert invoke(cli, "skill", "publish", str(EXAMPLE_SKILL)).exit_code == 0
    first = invoke(cli, "run", "ask", "-f", plans, "--dedupe-key", "t-1", "--input", '{"question": "late"}')
    assert first.exit_code == 0
    again = invoke(cli, "run", "ask", "-f", plans, "--dedupe-key", "t-1", "--input", '{"question": "late"}')
    assert again.exit_code == 0 and f"run {run_id(first)} already exists for dedupe key t-1" in again.output
    other = invoke(cli, "run", "ask", "-f", plans, "--dedupe-key", "t-1", "--input", '{"question": "refund"}')
    assert (other.exit_code, other.output.strip().replace("\n", " ")) == (
        2,
        f"error: --dedupe-key t-1: run {run_id(first)} already has it, with a different input; use a new key",
    )


def test_a_step_decision_for_a_run_that_is_not_waiting_on_one_is_refused(
    cli: tuple[CliRunner, str, Path],
) -> None:
    plans = str(cli[2])
    assert invoke(cli, "skill", "publish", str(EXAMPLE_SKILL)).exit_code == 0
    waiting = invoke(cli, "run", "ask", "-f", plans, "--input", '{"question": "late", "careful": true}')
    gate = re.search(r"waiting for approval ([0-9a-f]{32})", waiting.output)
    assert gate
    invoke(cli, "approvals", "reject", gate.group(1), "--reason", "no")
    failed = run_id(waiting)
    decided = invoke(cli, "runs", "resume", failed, "--step", "pick", "--output", "{}")
    assert (decided.exit_code, decided.output.strip().replace("\n", " ")) == (
        2,
        f"error: run {failed} is failed: --step, --output and --rerun are for a run that needs attention about a step; resume it without them",
    )


def test_a_run_left_to_a_worker_says_how_to_follow_it(cli: tuple[CliRunner, str, Path]) -> None:
    assert invoke(cli, "skill", "publish", str(EXAMPLE_SKILL)).exit_code == 0
    queued = invoke(cli, "run", "ask", "-f", str(cli[2]), "--no-wait", "--input", '{"question": "late"}')
    queued_id = run_id(queued)
    assert (queued.exit_code, queued.output.splitlines()) == (
        0,
        [
            f"run {queued_id} (ask): pending",
            f"a worker runs it; follow it with `fleetplane runs show {queued_id}`",
        ],
    )


def test_resuming_a_run_a_worker_already_finished_is_not_an_error(cli: tuple[CliRunner, str, Path]) -> None:
    assert invoke(cli, "skill", "publish", str(EXAMPLE_SKILL)).exit_code == 0
    done = run_id(invoke(cli, "run", "ask", "-f", str(cli[2]), "--input", '{"question": "late"}'))
    again = invoke(cli, "runs", "resume", done)
    assert (again.exit_code, again.output.splitlines()) == (
        0,
        [f"run {done} already succeeded (a worker resumed it)", f"run {done} (ask): succeeded"],
    )
    cancelled = invoke(cli, "runs", "cancel", done)
    assert (cancelled.exit_code, cancelled.output.strip()) == (2, f"error: run {done} already succeeded")
