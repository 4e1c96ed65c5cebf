"""`pipeline:NAME` targets: the example fleet's support-answer pipeline run end to end by `fleetplane eval
run`, each case a pipeline run worked to its end, its output scored; a run that cannot start fails only
its own case."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetplane.cli.app import _register, app
from fleetplane.cli.evals_pipeline import pipeline_runner
from fleetplane.cli.evals_targets import TARGET_RUNNERS
from fleetplane.evals.results import RunRepository
from fleetplane.pipelines.runs import RunStore
from fleetplane.store.db import Store

FLEET = Path(__file__).parents[2] / "examples" / "fleet"

# The example suite's cases plus two that must not pass: a wrong expected passage, an input the pipeline's
# trigger schema refuses.
SUITE = """\
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: answers-pipeline}
spec:
  target: {pipeline: support-answer}
  dimensions:
    - name: grounding
      scorers: [{type: checks}]
  cases:
    - {id: late-parcel, input: {text: "My parcel is late, where is it?"},
       expected: {source: shipping-delays, route: summarize}, metadata: {match: contains}}
    - {id: broken-item, input: {text: "The blender arrived broken."},
       expected: {source: damaged-items}, metadata: {match: contains}}
    - {id: wrong-source, input: {text: "The blender arrived broken."},
       expected: {source: invoices}, metadata: {match: contains}}
    - {id: no-text, input: {ticket: "T-1"}, expected: {source: invoices}}
"""


@pytest.fixture(scope="module", autouse=True)
def registered() -> Iterator[None]:
    _register()  # the whole CLI, as `fleetplane` runs: the pipeline runner registers with the groups
    assert TARGET_RUNNERS["pipeline"] is pipeline_runner
    yield
    del TARGET_RUNNERS["pipeline"]  # other tests build `eval` alone, without it


def test_a_suite_runs_the_example_pipeline_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("FLEETPLANE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLEETPLANE_GATEWAY_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    runner = CliRunner()
    for skill in ("summarize", "search-docs", "classify-ticket"):
        published = runner.invoke(
            app, ["skill", "publish", str(FLEET / "skills" / skill), "--database-url", url]
        )
        assert published.exit_code == 0, published.output
    suite = tmp_path / "answers.yaml"
    suite.write_text(SUITE)
    # No server listens at --server: the pipeline's LLM router falls back to its default route, as it says.
    args = ["eval", "run", str(suite), "-f", str(FLEET), "--server", "http://127.0.0.1:9", "-o", "json"]
    result = runner.invoke(app, [*args, "--database-url", url])
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)
    assert run["target"] == "pipeline:support-answer"
    grounding = run["summary"]["dimensions"]["grounding"]
    assert (grounding["cases"], grounding["pass_rate"]) == (4, 0.5)
    assert (run["summary"]["target"]["calls"], run["summary"]["target"]["errors"]) == (4, 1)

    async def stored() -> tuple[dict[str, float], dict[str, str | None], list[tuple[str, str]]]:
        store = await Store.open(url)
        try:
            repo = RunRepository(store)
            values = {o.case_id: o.value for o in await repo.observations(run["id"])}
            errors = {case: o["error"] for (case, _), o in (await repo.outputs(run["id"])).items()}
            runs = await RunStore(store).query(pipeline="support-answer")
            return values, errors, [(r.status, r.trigger) for r in runs]
        finally:
            await store.close()

    values, errors, pipeline_runs = asyncio.run(stored())
    assert values == {
        "late-parcel": 1.0,
        "broken-item": 1.0,
        "wrong-source": 0.0,
        "no-text": 0.0,
    }
    assert errors == {
        "late-parcel": None,
        "broken-item": None,
        "wrong-source": None,
        "no-text": "StartError: input of pipeline support-answer: at (root): 'text' is a required property",
    }
    # Three runs started (the refused input started none), each worked to its end, marked as the eval's.
    assert sorted(pipeline_runs) == [("succeeded", "eval")] * 3


def test_a_pipeline_target_name_is_checked(tmp_path: Path) -> None:
    suite = tmp_path / "answers.yaml"
    suite.write_text(SUITE)
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "run",
            str(suite),
            "-f",
            str(FLEET),
            "--target",
            "pipeline:support-answer@1",
            "--database-url",
            f"sqlite:///{tmp_path / 'db.sqlite'}",
        ],
    )
    assert result.exit_code == 2
    assert result.output == (
        "error: pipeline target 'support-answer@1': expected pipeline:NAME, e.g. pipeline:support-answer\n"
    )
