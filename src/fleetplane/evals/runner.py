"""A run: every case x epoch sent to the target, scored on every dimension, stored as it goes, and
summarised at the end.

Cases run `concurrency` at a time (the suite's, or the caller's). A target that fails on a case (an
HTTP error, an exception) fails that case on every 0-1 dimension; raw dimensions (cost, latency) skip
it rather than record a zero that would flatter the run. A scorer that fails (a judge's call) leaves its
dimension out for that case and is counted in the summary's `scoring_errors`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from fleetplane.evals.cases import Case
from fleetplane.evals.results import Answer, DimensionResult, Run, RunRepository
from fleetplane.evals.scoring import Sample, Score, Usage, timed_score
from fleetplane.evals.suites import LoadedDimension, LoadedSuite
from fleetplane.evals.summary import DimensionInfo, ScoringCost, summarize
from fleetplane.evals.targets import Target

Progress = Callable[[int, int], None]  # (done, total)


def suite_digest(suite: LoadedSuite) -> str:
    """What was run: the suite document and every case, canonically serialised."""
    payload = {
        "suite": suite.manifest.to_document(),
        "cases": [asdict(c) | {"source": ""} for c in suite.cases],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def dimension_infos(suite: LoadedSuite) -> list[DimensionInfo]:
    return [
        DimensionInfo(d.name, d.spec.weight, d.spec.goal, d.raw, d.spec.threshold) for d in suite.dimensions
    ]


def sample_of(case: Case, epoch: int, answer: Answer, target: str) -> Sample:
    usage = (
        Usage(answer.input_tokens or 0, answer.output_tokens or 0)
        if answer.input_tokens is not None or answer.output_tokens is not None
        else None
    )
    return Sample(
        case_id=case.id,
        input=case.input,
        output=answer.output,
        expected=case.expected,
        reference=case.reference,
        metadata=case.metadata,
        vars=case.vars,
        structured=answer.structured,
        usage=usage,
        latency_ms=answer.latency_ms,
        cost_usd=answer.cost_usd,
        model=answer.model,
        target=target,
        finish_reason=answer.finish_reason,
        trace_id=answer.trace_id,
        epoch=epoch,
    )


def combine(dimension: LoadedDimension, scores: Sequence[tuple[str, str, float, Score]]) -> DimensionResult:
    """The weighted mean of the scorers' values; pass by threshold, else by every deciding scorer."""
    total = sum(weight for _, _, weight, _ in scores)
    value = sum(weight * s.value for _, _, weight, s in scores) / total
    spec = dimension.spec
    passed: bool | None
    if spec.threshold is not None:
        passed = value >= spec.threshold if spec.goal == "maximize" else value <= spec.threshold
    else:
        decided = [s.passed for _, _, _, s in scores if s.passed is not None]
        passed = all(decided) if decided else None
    records = [
        {
            "type": kind,
            "tier": tier,
            "value": s.value,
            "passed": s.passed,
            "explanation": s.explanation,
            "cost_usd": s.cost_usd,
            "latency_ms": s.latency_ms,
            "flags": list(s.flags),
            "details": dict(s.details),
        }
        for kind, tier, _, s in scores
    ]
    return DimensionResult(spec.name, value, passed, records, sum(s.cost_usd for *_, s in scores))


async def score_answer(
    suite: LoadedSuite, sample: Sample, answer: Answer, costs: ScoringCost
) -> list[DimensionResult]:
    results = []
    for dimension in suite.dimensions:
        if answer.error is not None:
            if not dimension.raw:
                failed = {"type": "target", "value": 0.0, "passed": False, "explanation": answer.error}
                results.append(DimensionResult(dimension.name, 0.0, False, [failed], 0.0))
            continue
        scored = []
        for weight, scorer in dimension.scorers:
            try:
                score = await timed_score(scorer, sample)
            except Exception as exc:  # a judge that failed says nothing about the answer
                costs.failed(scorer.type, f"{sample.case_id}: {type(exc).__name__}: {exc}")
                break
            costs.add(scorer.tier, score.cost_usd, score.latency_ms)
            scored.append((scorer.type, scorer.tier, weight, score))
        else:
            results.append(combine(dimension, scored))
        # A dimension a scorer failed on is left out for this case (the gate pairs what both runs have).
    return results


async def run_suite(
    suite: LoadedSuite,
    target: Target,
    repo: RunRepository,
    *,
    epochs: int | None = None,
    seed: int = 0,
    concurrency: int | None = None,
    trigger: str = "manual",
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
    options: dict[str, Any] | None = None,
) -> Run:
    """Run `suite` against `target`, store every result, and return the finished run with its summary."""
    spec = suite.manifest.spec
    epochs = epochs or spec.epochs
    run = Run(
        id=uuid.uuid4().hex,
        suite=suite.name,
        suite_digest=suite_digest(suite),
        target=target.name,
        status="running",
        trigger=trigger,
        epochs=epochs,
        seed=seed,
        cases=len(suite.cases),
        started_at=clock(),
        options={"allow_same_family_judge": spec.allow_same_family_judge, **(options or {})},
    )
    await repo.create(run)
    work = [(case, epoch) for case in suite.cases for epoch in range(epochs)]
    gate = asyncio.Semaphore(concurrency or spec.concurrency)
    costs = ScoringCost()
    done = 0

    async def one(case: Case, epoch: int) -> None:
        nonlocal done
        async with gate:
            answer = await target(case, epoch)
        sample = sample_of(case, epoch, answer, target.name)
        results = await score_answer(suite, sample, answer, costs)
        await repo.record(run.id, case.id, epoch, case.fixture, answer, results)
        done += 1
        if progress is not None:
            progress(done, len(work))

    try:
        await asyncio.gather(*(one(case, epoch) for case, epoch in work))
    except BaseException as exc:
        await repo.finish(
            run.id, status="failed", finished_at=clock(), summary=None, error=f"{type(exc).__name__}: {exc}"
        )
        raise
    observations = await repo.observations(run.id)
    outputs = list((await repo.outputs(run.id)).values())
    summary = summarize(dimension_infos(suite), observations, outputs, costs, seed=seed)
    finished = clock()
    await repo.finish(run.id, status="done", finished_at=finished, summary=summary)
    return Run(**{**vars(run), "status": "done", "finished_at": finished, "summary": summary})
