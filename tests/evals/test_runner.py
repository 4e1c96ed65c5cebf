"""A run end to end in process: a callable target, every case x epoch x dimension stored, the summary
with its intervals, and the gate on two stored runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetplane.evals.gate import GatePolicy, evaluate_gate
from fleetplane.evals.results import RunNotFound, RunRepository
from fleetplane.evals.runner import run_suite
from fleetplane.evals.scoring import Sample, Score, register_scorer
from fleetplane.evals.suites import load_suite
from fleetplane.evals.targets import CallableTarget
from fleetplane.store.db import Store

SUITE = """\
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: labels}
spec:
  target: {skill: classify@1.0.0}
  epochs: 2
  dimensions:
    - name: correctness
      gate: {margin: 0.0}
      scorers: [{type: exact}]
    - name: brevity
      weight: 0.5
      threshold: 0.5
      scorers: [{type: length, max: 8}]
  caseFiles: [{path: cases.jsonl}]
"""


def _suite(tmp_path: Path, n: int = 40) -> Path:
    (tmp_path / "suite.yaml").write_text(SUITE)
    lines = [
        f'{{"id": "c{i}", "input": "item {i}", "expected": "{"even" if i % 2 == 0 else "odd"}"}}'
        for i in range(n)
    ]
    (tmp_path / "cases.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def _classifier(wrong_every: int | None) -> Any:
    async def classify(text: Any) -> Any:
        i = int(str(text).split()[1])
        if i == 7:
            raise RuntimeError("the skill crashed")
        right = "even" if i % 2 == 0 else "odd"
        if wrong_every and i % wrong_every == 0:
            return "a rather long and wrong answer"
        return right

    return classify


async def _runs(tmp_path: Path, database_url: str) -> tuple[Any, Any, RunRepository, Store]:
    suite = load_suite(_suite(tmp_path), "labels")
    store = await Store.open(database_url)
    repo = RunRepository(store)
    seen: list[tuple[int, int]] = []
    good = await run_suite(
        suite,
        CallableTarget("skill:classify@1.0.0", _classifier(None)),
        repo,
        progress=lambda d, t: seen.append((d, t)),
    )
    bad = await run_suite(suite, CallableTarget("skill:classify@1.1.0", _classifier(3)), repo, seed=1)
    assert seen[-1] == (80, 80) and len(seen) == 80
    return good, bad, repo, store


def test_a_run_stores_every_case_epoch_and_dimension(tmp_path: Path, database_url: str) -> None:
    async def scenario() -> None:
        good, bad, repo, store = await _runs(tmp_path, database_url)
        try:
            assert (good.status, good.epochs, good.cases, good.target) == (
                "done",
                2,
                40,
                "skill:classify@1.0.0",
            )
            observations = await repo.observations(good.id)
            assert len(observations) == 40 * 2 * 2
            crashed = [o for o in observations if o.case_id == "c7"]
            assert {(o.value, o.passed) for o in crashed} == {(0.0, False)}
            outputs = await repo.outputs(good.id)
            assert outputs[("c7", 0)]["error"] == "RuntimeError: the skill crashed"
            assert outputs[("c4", 1)]["output"] == "even"
            correctness = good.summary["dimensions"]["correctness"]
            assert correctness["cases"] == 40
            assert correctness["pass_rate"] == pytest.approx(39 / 40)
            assert correctness["pass_method"] == "wilson"
            assert correctness["pass_ci"][0] < 39 / 40 < correctness["pass_ci"][1]
            assert good.summary["target"]["errors"] == 2
            assert good.summary["score"] == pytest.approx((39 / 40 + 0.5 * 39 / 40) / 1.5)
            assert good.summary["scoring"]["deterministic"]["items"] == 78
            assert good.summary["scoring"]["heuristic"]["cost_usd_per_item"] >= 0
            stored = await repo.get(good.id[:8])
            assert stored.summary == good.summary and stored.status == "done"
            assert [r.id for r in await repo.runs("labels")] == [good.id, bad.id]
            with pytest.raises(RunNotFound, match="eval run 'zzzz' does not exist"):
                await repo.get("zzzz")

            # The second version is wrong on every third case: the gate blocks it on correctness.
            report = evaluate_gate(
                await repo.observations(good.id),
                await repo.observations(bad.id),
                policies={"correctness": GatePolicy(margin=0.0)},
                baseline_run=good.id,
                candidate_run=bad.id,
            )
            [verdict] = report.dimensions
            assert verdict.method == "paired-bootstrap"  # 2 epochs: per-case pass rates are averaged
            assert verdict.delta == pytest.approx(-14 / 40)  # c0, c3 ... c39 are now wrong
            assert report.decision == "block"
        finally:
            await store.close()

    asyncio.run(scenario())


@dataclass(frozen=True)
class _Flaky:
    type: str = "test-flaky"
    tier: str = "judge"

    async def score(self, sample: Sample) -> Score:
        if sample.case_id == "c1":
            raise RuntimeError("the judge's answer held no verdict")
        return Score(1.0, passed=True)


register_scorer("test-flaky", "judge", "fails on case c1 (tests)")(lambda params: _Flaky())

FLAKY = """\
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: flaky}
spec:
  target: {pipeline: echo}
  dimensions:
    - {name: judged, scorers: [{type: test-flaky}]}
    - {name: exact, scorers: [{type: exact}]}
  cases: [{id: c0, input: a, expected: a}, {id: c1, input: b, expected: b}]
"""


def test_a_failing_scorer_leaves_its_dimension_out_for_that_case(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "suite.yaml").write_text(FLAKY)

    async def echo(value: Any) -> Any:
        return value

    async def scenario() -> None:
        store = await Store.open(sqlite_url)
        try:
            repo = RunRepository(store)
            run = await run_suite(load_suite(tmp_path, "flaky"), CallableTarget("pipeline:echo", echo), repo)
            assert run.status == "done"
            assert sorted((o.dimension, o.case_id) for o in await repo.observations(run.id)) == [
                ("exact", "c0"),
                ("exact", "c1"),
                ("judged", "c0"),
            ]
            assert run.summary["scoring_errors"] == {
                "test-flaky": {"count": 1, "first": "c1: RuntimeError: the judge's answer held no verdict"}
            }
            assert run.summary["dimensions"]["judged"]["cases"] == 1
        finally:
            await store.close()

    asyncio.run(scenario())
