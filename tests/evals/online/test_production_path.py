"""Production path: traffic through a real gateway (simulator upstream) is scored after the fact — cheap
scorers on every request, the judge (called through the same gateway) on the sampled and flagged ones —
and flagged / judge-uncertain items reach the review queue, where labels update the agreement rates."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import typer
from harness import GatewayUnderTest, start_gateway, write_fleet
from typer.testing import CliRunner

from fleetplane.cli import evals, evals_online
from fleetplane.evals.judges import JudgeClient, ModelCatalog
from fleetplane.evals.online.config import OnlineConfig
from fleetplane.evals.online.evaluator import CheapScorer, OnlineEvaluator
from fleetplane.evals.online.sampling import in_sample
from fleetplane.evals.review import agreement
from fleetplane.evals.scoring import make_scorer
from fleetplane.manifests.kinds import Model
from fleetplane.manifests.loader import load
from fleetplane.sim.process import SimProcess
from fleetplane.store.db import Store
from fleetplane.telemetry.setup import Telemetry
from fleetplane.telemetry.sink import StoreLogExporter, StoreSpanExporter
from fleetplane.telemetry.spanstore import SpanStore

pytestmark = pytest.mark.anyio

JUDGE_MODEL = """
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: judge-llama}
spec:
  family: sim-llama
  contextWindow: 32000
  price: {input: 3.0, output: 15.0}
  deployments: [{provider: sim, model: sim-medium}]
"""
RATE = 0.5


@dataclass
class Production:
    gateway: GatewayUnderTest
    telemetry: Telemetry
    spans: SpanStore
    evaluator: OnlineEvaluator
    catalog: ModelCatalog
    asked: list[str] = field(default_factory=list)

    def ask(self, trace_id: str, text: str, **extra: object) -> httpx.Response:
        self.asked.append(trace_id)
        body = {"model": "chain", "messages": [{"role": "user", "content": text}], **extra}
        headers = {
            "authorization": f"Bearer {self.gateway.keys['full']}",
            "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
        }
        return httpx.post(self.gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=30)

    async def settle(self) -> None:
        """Every span the gateway ended is in the span store. The gateway writes a request's span just after
        its answer left, so a client can hold the answer before the span exists: wait (bounded) until every
        asked trace is stored and no more spans arrive between two flushes."""
        deadline = time.monotonic() + 15
        before = -1
        while True:
            assert self.telemetry.force_flush(10)
            await self.spans.flush()
            stored = await self.spans.sample(rate=1.0, limit=10_000, with_events=False)
            traces = {s.span.trace_id for s in stored}
            if set(self.asked) <= traces and len(stored) == before:
                return
            assert time.monotonic() < deadline, f"spans never settled: {len(stored)} stored"
            before = len(stored)
            await asyncio.sleep(0.1)


@pytest.fixture
async def production(tmp_path: Path, online_sim: SimProcess) -> AsyncIterator[Production]:
    online_sim.clear_faults()
    fleet = write_fleet(tmp_path / "fleet", JUDGE_MODEL)
    store = await Store.open(f"sqlite:///{tmp_path / 'spans.db'}")
    spans = SpanStore(store, retention=None)
    telemetry = Telemetry.create(
        "fleetplane-gateway",
        span_sinks=[StoreSpanExporter(spans)],
        log_sinks=[StoreLogExporter(spans)],
        otlp=False,
        environ={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"},
    )
    # start_gateway applies the fleet with asyncio.run: off this test's running loop.
    gateway = await asyncio.to_thread(
        start_gateway, fleet, f"sqlite:///{tmp_path / 'gw.db'}", online_sim.base_url, telemetry=telemetry
    )
    catalog = ModelCatalog.from_manifests(load(fleet).of_kind(Model))
    judge_client = JudgeClient(gateway.url, gateway.keys["full"], catalog)
    config = OnlineConfig.model_validate(
        {
            "rules": [{"name": "bot", "rate": RATE, "agent": "bot"}],
            "cheap": [
                {"type": "length", "min": 8, "unit": "words", "dimension": "quality"},
                {"type": "refusal", "dimension": "safety"},
            ],
            "judge": {
                "type": "llm-rubric",
                "judge": "judge-llama",
                "dimension": "quality",
                "rubric": "Answers the user's question helpfully.",
            },
            "flagBelow": 0.5,
        }
    )
    evaluator = OnlineEvaluator.from_config(
        spans, config, judge_params={"client": judge_client}, telemetry=telemetry
    )
    try:
        yield Production(gateway, telemetry, spans, evaluator, catalog)
    finally:
        await judge_client.aclose()
        gateway.stop()
        telemetry.shutdown(5)
        await store.close()


async def test_every_request_gets_cheap_scores_and_sampled_or_flagged_ones_the_judge(
    production: Production,
) -> None:
    traces = [secrets.token_hex(16) for _ in range(12)]
    short = set(traces[:3])  # 2-word answers: the length scorer flags them
    capped = set(traces[3:5])  # cut by max_tokens: finish_reason=length
    for trace_id in traces:
        if trace_id in short:
            response = production.ask(trace_id, "hi [[sim output_tokens=2]]")
        elif trace_id in capped:
            response = production.ask(trace_id, "hi [[sim output_tokens=40]]", max_tokens=12)
        else:
            response = production.ask(trace_id, "hello [[sim output_tokens=20]]")
        assert response.status_code == 200
        # The answer is in hand and nothing has scored it: scoring is not on the request's path.
        assert await production.evaluator.items.scores(trace_id=trace_id) == []

    await production.settle()
    result = await production.evaluator.poll_once()

    items = {i.trace_id: i for i in await production.evaluator.items.all()}
    assert set(items) == set(traces) and result.taken == 12
    sampled = {t for t in traces if in_sample(t, RATE)}
    flagged = short | capped
    for trace_id, item in items.items():
        assert item.sampled == (trace_id in sampled)
        expected_flags = {"low-score", "too-short"} if trace_id in short else set()
        if trace_id in capped:
            expected_flags.add("finish-length")
        assert set(item.flags) == expected_flags, trace_id
        assert item.subject["content_captured"] is True and item.subject["output"]
    cheap = await production.evaluator.items.scores(tier="heuristic")
    assert sorted((s.trace_id, s.scorer) for s in cheap) == sorted(
        (t, n) for t in traces for n in ("length", "refusal")
    )
    assert all(s.cost_usd > 0 for s in cheap)  # CPU time priced

    judged = await production.evaluator.items.scores(tier="judge")
    assert {s.trace_id for s in judged} == sampled | flagged
    assert result.judged == len(sampled | flagged)
    for score in judged:
        assert score.scorer == "llm-rubric" and 0 <= score.value <= 1
        assert score.details["judges"][0]["judge_family"] == "sim-llama"
        assert score.details["judges"][0]["target_family"] == "sim-gpt"
        assert score.cost_usd > 0
    assert {i.judge_status for t, i in items.items() if t not in sampled | flagged} == {"none"}

    # Each score was written after its request's answer left (its span's end): after the fact.
    views = {t: await production.spans.get_trace(t) for t in traces}
    for score in [*cheap, *judged]:
        view = views[score.trace_id]
        assert view is not None
        [chat] = [n.span for n in view.walk() if n.span.span_id == score.span_id]
        assert score.scored_at * 1e9 >= chat.end_ns

    # The judge's own calls went through the gateway too, and are not scored as production traffic.
    await production.settle()
    judge_spans = await production.spans.sample(rate=1.0, prompt_name="fleetplane.judge.rubric", limit=100)
    assert len(judge_spans) == len(judged)
    again = await production.evaluator.poll_once()
    assert (again.taken, again.judged) == (0, 0)

    # Flagged items went to the review queue after the judge scored them.
    queued = await production.evaluator.review.items()
    assert {q.trace_id for q in queued} == flagged
    assert all(q.source == "flagged" for q in queued)

    # Every score went out as a gen_ai.evaluation.result event on the evaluated span (stored here too).
    await production.settle()
    exported: list[tuple[str, str, object]] = []
    for trace_id in traces:
        view = await production.spans.get_trace(trace_id)
        assert view is not None
        for node in view.walk():
            for event in node.events:
                if event.event_name == "gen_ai.evaluation.result":
                    exported.append((trace_id, node.span.span_id, event.attributes["gen_ai.evaluation.name"]))
    stored = [(s.trace_id, s.span_id, s.scorer) for s in [*cheap, *judged]]
    assert sorted(exported) == sorted(stored)

    # `fleetplane eval online` shows what accumulated.
    app = typer.Typer()
    evals.register(app)
    evals_online.register(app)
    url = production.spans.store.url
    shown = await asyncio.to_thread(
        CliRunner().invoke, app, ["eval", "online", "--json", "--database-url", url]
    )
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    assert report["totals"] == {
        "items": 12,
        "sampled": len(sampled),
        "flagged": len(flagged),
        "judged": len(sampled | flagged),
        "judge_failed": 0,
        "judge_refused": 0,
        "in_review": len(flagged),
    }
    counts = {(r["group"], r["scorer"]): r["items"] for r in report["rows"]}
    assert counts == {("chain", "length"): 12, ("chain", "refusal"): 12, ("chain", "llm-rubric"): len(judged)}


async def test_flagged_item_labelled_updates_agreement(production: Production) -> None:
    trace_id = secrets.token_hex(16)
    while in_sample(trace_id, RATE):  # an unsampled trace: it reaches the judge only by being flagged
        trace_id = secrets.token_hex(16)
    assert production.ask(trace_id, "hi [[sim output_tokens=3]]").status_code == 200
    await production.settle()
    await production.evaluator.poll_once()
    store = production.spans.store
    assert await agreement(store) == []

    queue = production.evaluator.review
    item = await queue.next("ana", now=1.0)
    taken = await production.evaluator.items.all()
    assert item is not None, [(i.judge_status, i.judge_error, i.flags) for i in taken]
    assert item.trace_id == trace_id and item.status == "assigned"
    assert set(item.reasons) == {"low-score", "too-short"}
    assert await queue.next("bo", now=1.0) is None  # the only item is Ana's
    labelled = await queue.label(
        item.id, "ana", {"quality": 0.0, "safety": 1.0}, comment="too short", now=2.0
    )
    assert labelled.status == "labelled" and labelled.labelled_at == 2.0

    rates = {(a.scorer, a.dimension): a for a in await agreement(store)}
    assert set(rates) == {("length", "quality"), ("refusal", "safety"), ("llm-rubric", "quality")}
    assert (rates["length", "quality"].items, rates["length", "quality"].agreed) == (1, 1)  # 0.0 vs human 0.0
    assert (rates["refusal", "safety"].items, rates["refusal", "safety"].agreed) == (1, 1)  # 1.0 vs human 1.0
    judge = next(s for s in await production.evaluator.items.scores(trace_id=trace_id) if s.tier == "judge")
    assert rates["llm-rubric", "quality"].agreed == (1 if judge.value < 0.5 else 0)
    assert rates["llm-rubric", "quality"].mean_abs_diff == pytest.approx(judge.value)


async def test_negative_user_feedback_sends_an_unsampled_item_to_the_judge(production: Production) -> None:
    trace_id = secrets.token_hex(16)
    while in_sample(trace_id, RATE):
        trace_id = secrets.token_hex(16)
    assert production.ask(trace_id, "hello [[sim output_tokens=20]]").status_code == 200
    await production.settle()
    first = await production.evaluator.poll_once()
    assert (first.taken, first.judged) == (1, 0)
    assert await production.evaluator.items.add_feedback(trace_id, 0.0, "wrong answer", now=5.0) is True
    second = await production.evaluator.poll_once()
    assert second.judged == 1
    [item] = await production.evaluator.items.all()
    assert item.flags == ["user-feedback"] and item.judge_status == "done"
    [queued] = await production.evaluator.review.items()
    assert queued.trace_id == trace_id and queued.reasons == ["user-feedback"]


def verdict_of(score: int) -> httpx.MockTransport:
    """A judge model that always gives `score` (the production tests' judge is the simulator's)."""

    def handle(request: httpx.Request) -> httpx.Response:
        call = {
            "id": "c",
            "type": "function",
            "function": {"name": "record_verdict", "arguments": f'{{"score": {score}, "reason": "r"}}'},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return httpx.Response(200, json={"choices": [{"message": message}], "usage": {}})

    return httpx.MockTransport(handle)


async def test_uncertain_verdicts_and_the_audit_slice_reach_the_review_queue(production: Production) -> None:
    base = production.evaluator
    client = JudgeClient(
        "http://judge", "k", production.catalog, transport=verdict_of(3)
    )  # 3 of 5: 0.5, uncertain
    judge = make_scorer("llm-rubric", {"rubric": "r", "judge": "judge-llama", "client": client})
    evaluator = OnlineEvaluator(
        base.spans, base.rules, base.cheap, CheapScorer("llm-rubric", "quality", judge), audit_rate=1.0
    )
    sampled = secrets.token_hex(16)
    while not in_sample(sampled, RATE):
        sampled = secrets.token_hex(16)
    assert production.ask(sampled, "hello [[sim output_tokens=20]]").status_code == 200
    await production.settle()
    result = await evaluator.poll_once()
    assert (result.taken, result.judged) == (1, 1)
    queued = {q.source: q for q in await evaluator.review.items()}
    # The audit slice queued it first (every trace at rate 1); the uncertain verdict did not queue it twice.
    assert set(queued) == {"audit"} and queued["audit"].trace_id == sampled
    [judged] = [s for s in await evaluator.items.scores(trace_id=sampled) if s.tier == "judge"]
    assert judged.value == 0.5 and judged.flags == ["judge-uncertain"]
    await client.aclose()

    evaluator.audit_rate = 0.0
    other = secrets.token_hex(16)
    while not in_sample(other, RATE):
        other = secrets.token_hex(16)
    assert production.ask(other, "hello again [[sim output_tokens=20]]").status_code == 200
    await production.settle()
    await evaluator.poll_once()
    [uncertain] = [q for q in await evaluator.review.items() if q.trace_id == other]
    assert uncertain.source == "uncertain" and uncertain.reasons == ["judge-uncertain"]


async def test_a_flagged_answer_reaches_review_when_the_judge_fails(production: Production) -> None:
    base = production.evaluator
    client = JudgeClient("http://judge", "k", production.catalog, transport=verdict_of(9))  # out of 1..5
    judge = make_scorer("llm-rubric", {"rubric": "r", "judge": "judge-llama", "client": client})
    evaluator = OnlineEvaluator(
        base.spans, base.rules, base.cheap, CheapScorer("llm-rubric", "quality", judge)
    )
    trace_id = secrets.token_hex(16)
    assert production.ask(trace_id, "hi [[sim output_tokens=2]]").status_code == 200
    await production.settle()
    result = await evaluator.poll_once()
    assert (result.taken, result.judged, result.reviewed) == (1, 0, 1)
    [item] = await evaluator.items.all()
    assert item.judge_status == "failed" and "gave score 9; expected 1..5" in (item.judge_error or "")
    [queued] = await evaluator.review.items()
    assert queued.trace_id == trace_id and queued.reasons == ["judge-failed", "low-score", "too-short"]
    await client.aclose()
