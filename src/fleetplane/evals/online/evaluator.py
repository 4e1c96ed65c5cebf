"""`OnlineEvaluator`: scores production traffic after the fact, from the span store.

Each poll reads the GenAI spans that started since the cursor (`reader`: keys first, then the unseen
spans whole, with their content events), keeps those a sampling rule matches (judge calls are skipped:
they name themselves `fleetplane.judge.*`), claims them in the store (a span is taken once, by one
replica), runs the cheap scorers on every one, flags items (a low cheap score, a scorer's own flag,
a guardrail or error, finish_reason=length, negative user feedback), sends sampled and flagged items to
the judge, and puts flagged, judge-uncertain and audit-slice items in the review queue. Scores are stored
and exported as `gen_ai.evaluation.result` events.

The cursor trails the newest span seen by `lag` (spans are written after they end, so one that started
earlier may appear later); spans re-read inside that window are skipped by the in-memory seen set and the
claim. Nothing here is called by the gateway: a request never waits on a scorer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetplane.evals.judges.client import JUDGE_PROMPT_PREFIX
from fleetplane.evals.judges.family import FamilyError
from fleetplane.evals.online.config import OnlineConfig
from fleetplane.evals.online.export import ScoreExporter
from fleetplane.evals.online.items import ItemRow, OnlineItems, ScoreRow
from fleetplane.evals.online.reader import read_page
from fleetplane.evals.online.sampling import SamplingRule, rule_for, sample_fraction
from fleetplane.evals.online.subject import Subject, sample_of, subject_of
from fleetplane.evals.review.queue import ReviewQueue
from fleetplane.evals.scoring import Sample, Score, Scorer, make_scorer, timed_score
from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.spanstore import SpanStore
from fleetplane.telemetry.usagequery import SampledSpan

log = logging.getLogger("fleetplane.evals")

NS = 1_000_000_000
INFERENCE = frozenset(str(op) for op in sc.INFERENCE_OPERATIONS)
GUARDRAIL_ERRORS = ("guardrail", "content_filter")
JUDGE_REVIEW_FLAGS = frozenset({"judge-uncertain", "order-disagreement"})


def audit_fraction(trace_id: str) -> float:
    """A second, independent hash: the audit slice must not be the judge sample's traces."""
    digest = hashlib.sha256(b"audit:" + trace_id.lower().encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / 2**53


@dataclass(frozen=True)
class CheapScorer:
    name: str
    dimension: str
    scorer: Scorer


@dataclass
class PollResult:
    taken: int = 0  # spans claimed by this evaluator
    cheap_scores: int = 0
    judged: int = 0
    reviewed: int = 0


@dataclass
class OnlineEvaluator:
    spans: SpanStore
    rules: Sequence[SamplingRule]
    cheap: Sequence[CheapScorer] = ()
    judge: CheapScorer | None = None
    interval: float = 1.0
    lag: float = 120.0
    flag_below: float = 0.5
    audit_rate: float = 0.0
    batch: int = 500
    judge_concurrency: int = 8  # judge calls in flight (each waits on a model for ~a second)
    exporter: ScoreExporter | None = None
    clock: Callable[[], float] = time.time
    items: OnlineItems = field(init=False)
    review: ReviewQueue = field(init=False)
    _read_from_ns: int | None = None
    _seen: dict[tuple[str, str], int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _reset_judging: bool = False

    def __post_init__(self) -> None:
        self.items = OnlineItems(self.spans.store)
        self.review = ReviewQueue(self.spans.store)

    @classmethod
    def from_config(
        cls,
        spans: SpanStore,
        config: OnlineConfig,
        *,
        judge_params: dict[str, Any] | None = None,
        telemetry: Any = None,
    ) -> OnlineEvaluator:
        """Scorers made from the evals registry by name; `judge_params` add to the judge's (a client)."""
        cheap = [CheapScorer(s.type, s.dimension, make_scorer(s.type, s.params)) for s in config.cheap]
        judge = None
        if config.judge is not None:
            spec = config.judge
            judge = CheapScorer(
                spec.type, spec.dimension, make_scorer(spec.type, {**spec.params, **(judge_params or {})})
            )
        return cls(
            spans,
            config.sampling_rules(),
            cheap,
            judge,
            interval=config.interval,
            lag=config.lag,
            flag_below=config.flag_below,
            audit_rate=config.audit_rate,
            batch=config.batch,
            judge_concurrency=config.judge_concurrency,
            exporter=ScoreExporter(telemetry) if telemetry is not None else None,
        )

    # ---- one poll ----------------------------------------------------------------------------------

    async def poll_once(self) -> PollResult:
        result = PollResult()
        if self._read_from_ns is None:
            newest = await self.items.newest_start_ns()
            start = newest if newest is not None else int(self.clock() * NS)
            self._read_from_ns = start - int(self.lag * NS)
        since = self._read_from_ns
        newest_seen = since
        while True:
            page = await read_page(
                self.spans.store, since_ns=since, limit=self.batch, seen=lambda t, s: (t, s) in self._seen
            )
            for trace_id, span_id, start_ns in page.keys:
                self._seen[(trace_id, span_id)] = start_ns
                newest_seen = max(newest_seen, start_ns)
            await self._take(page.fresh, result)
            if len(page.keys) < self.batch or page.keys[-1][2] == since:
                break
            since = page.keys[-1][2]
        self._read_from_ns = max(self._read_from_ns, newest_seen - int(self.lag * NS))
        self._seen = {k: v for k, v in self._seen.items() if v >= self._read_from_ns}
        await self._judge_due(result)
        return result

    async def _take(self, page: Sequence[SampledSpan], result: PollResult) -> None:
        candidates: list[tuple[SampledSpan, SamplingRule, Subject]] = []
        for item in page:
            span = item.span
            if span.operation not in INFERENCE or (span.prompt_name or "").startswith(JUDGE_PROMPT_PREFIX):
                continue
            rule = rule_for(span, self.rules)
            if rule is not None:
                candidates.append((item, rule, subject_of(item)))
        if not candidates:
            return
        now = self.clock()
        negative = await self.items.negative_feedback(item.span.trace_id for item, _, _ in candidates)
        rows: list[dict[str, Any]] = []
        scored: dict[tuple[str, str], list[ScoreRow]] = {}
        for item, rule, subject in candidates:
            # Scored before the claim: one insert then carries the verdict, and a span another replica
            # claimed first costs only these microseconds of CPU.
            span = item.span
            key = (span.trace_id, span.span_id)
            scores, flags = await self._cheap(item, subject, span.trace_id in negative)
            scored[key] = scores
            sampled = rule.samples(span.trace_id)
            rows.append(
                {
                    "trace_id": span.trace_id,
                    "span_id": span.span_id,
                    "start_ns": span.start_ns,
                    "seen_at": now,
                    "rule": rule.name,
                    "model": span.request_model or span.response_model,
                    "agent": span.agent,
                    "team": span.team,
                    "prompt_version": span.prompt_version,
                    "input_digest": subject.input_digest(),
                    "sample_u": sample_fraction(span.trace_id),
                    "sampled": sampled,
                    "flags": sorted(flags),
                    "judge_status": "due" if (sampled or flags) and self.judge is not None else "none",
                    "judge_error": None,
                    "subject": subject.as_json(),
                }
            )
        taken = await self.items.claim(rows)
        result.taken += len(taken)
        kept = [score for key, scores in scored.items() if key in taken for score in scores]
        await self.items.add_scores(kept)
        result.cheap_scores += len(kept)
        for row in rows:
            key = (row["trace_id"], row["span_id"])
            if key not in taken:
                continue
            self._export(scored[key], row["model"])
            subject = Subject.from_json(row["subject"])
            if row["judge_status"] == "none" and row["flags"]:
                result.reviewed += await self._review(*key, "flagged", row["flags"], subject)
            if self.audit_rate and audit_fraction(row["trace_id"]) < self.audit_rate:
                result.reviewed += await self._review(*key, "audit", ["audit"], subject)

    async def _cheap(
        self, item: SampledSpan, subject: Subject, feedback: bool
    ) -> tuple[list[ScoreRow], set[str]]:
        """Every cheap scorer on one span, and the flags that send it to the judge."""
        sample = sample_of(item, subject)
        key = {"trace_id": item.span.trace_id, "span_id": item.span.span_id}
        flags: set[str] = set()
        scored: list[ScoreRow] = []
        for cheap in self.cheap:
            try:
                score = await timed_score(cheap.scorer, sample)
            except Exception as exc:  # one broken scorer must not stop the others
                log.warning("online scorer %s failed on %s: %s", cheap.name, sample.case_id, exc)
                continue
            scored.append(self._row(key, cheap, score))
            flags.update(score.flags)
            if score.unit == "ratio" and score.value < self.flag_below:
                flags.add("low-score")
        if subject.finish_reason == "length":
            flags.add("finish-length")
        if (subject.error_type or "").startswith(
            GUARDRAIL_ERRORS
        ) or subject.finish_reason == "content_filter":
            flags.add("guardrail")
        if feedback:
            flags.add("user-feedback")
        return scored, flags

    async def _judge_due(self, result: PollResult) -> None:
        if self.judge is None:
            return
        if not self._reset_judging:
            # Items a stopped evaluator was judging: judged again rather than left behind.
            await self.items.requeue_judging()
            self._reset_judging = True
        gate = asyncio.Semaphore(self.judge_concurrency)

        async def one(item: ItemRow) -> None:
            async with gate:
                if await self.items.take_due(item.trace_id, item.span_id):  # not taken by another replica
                    await self._judge_one(item, result)

        await asyncio.gather(*(one(item) for item in await self.items.due(self.batch)))

    async def _judge_one(self, item: ItemRow, result: PollResult) -> None:
        assert self.judge is not None
        subject = Subject.from_json(item.subject)
        sample = Sample(
            case_id=f"{item.trace_id}/{item.span_id}",
            input=subject.input,
            output=subject.output,
            model=item.model,
            finish_reason=subject.finish_reason,
            trace_id=item.trace_id,
        )
        try:
            score = await timed_score(self.judge.scorer, sample)
        except Exception as exc:
            refused = isinstance(exc, FamilyError)
            if not refused:
                log.warning("online judge failed on %s: %s", sample.case_id, exc)
            status = "refused" if refused else "failed"
            await self.items.update(
                item.trace_id, item.span_id, judge_status=status, judge_error=str(exc)[:2000]
            )
            if item.flags:  # a flagged answer still reaches a human without the judge's verdict
                reasons = [*item.flags, f"judge-{status}"]
                result.reviewed += await self._review(
                    item.trace_id, item.span_id, "flagged", reasons, subject
                )
            return
        row = self._row({"trace_id": item.trace_id, "span_id": item.span_id}, self.judge, score)
        await self.items.add_scores([row])
        self._export([row], item.model)
        await self.items.update(item.trace_id, item.span_id, judge_status="done")
        result.judged += 1
        uncertain = JUDGE_REVIEW_FLAGS & set(score.flags)
        if item.flags:
            result.reviewed += await self._review(
                item.trace_id, item.span_id, "flagged", [*item.flags, *uncertain], subject
            )
        elif uncertain:
            result.reviewed += await self._review(
                item.trace_id, item.span_id, "uncertain", uncertain, subject
            )

    async def _review(self, trace_id: str, span_id: str, source: str, reasons: Any, subject: Subject) -> int:
        queued = await self.review.enqueue(
            trace_id,
            span_id,
            source=source,
            reasons=list(reasons),
            subject=subject.as_json(),
            now=self.clock(),
        )
        return 1 if queued is not None else 0

    def _row(self, item: dict[str, Any], scorer: CheapScorer, score: Score) -> ScoreRow:
        return ScoreRow(
            trace_id=item["trace_id"],
            span_id=item["span_id"],
            scorer=scorer.name,
            dimension=scorer.dimension,
            tier=str(scorer.scorer.tier),
            value=score.value,
            passed=score.passed,
            explanation=score.explanation,
            flags=list(score.flags),
            cost_usd=score.cost_usd,
            latency_ms=score.latency_ms,
            details=dict(score.details),
            scored_at=self.clock(),
        )

    def _export(self, rows: Sequence[ScoreRow], model: str | None) -> None:
        if self.exporter is None:
            return
        for r in rows:
            try:
                self.exporter.export(
                    trace_id=r.trace_id,
                    span_id=r.span_id,
                    scorer=r.scorer,
                    dimension=r.dimension,
                    tier=r.tier,
                    value=r.value,
                    passed=r.passed,
                    explanation=r.explanation,
                    cost_usd=r.cost_usd,
                    model=model,
                )
            except Exception as exc:  # telemetry must not stop scoring
                log.warning("could not export online score: %s", exc)

    # ---- the loop ------------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception as exc:
                log.warning("online evals: poll failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="fleetplane-online-evals")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
