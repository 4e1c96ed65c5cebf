"""The drift signal: a synthetic shift in outputs raises it; an unchanged stream does not."""

from __future__ import annotations

import random
import secrets
from collections import Counter

import pytest

from fleetplane.store.db import Store
from fleetplane.telemetry.drift import Sample, compare, drift, psi, tvd, two_proportion_z
from fleetplane.telemetry.records import SpanRecord
from fleetplane.telemetry.spanstore import SpanStore

HOUR = 3600.0
NOW = 1_790_000_000.0


def chat_span(
    agent: str, at: float, output_tokens: int, finish: str, prompt_version: str = "v1"
) -> SpanRecord:
    return SpanRecord(
        trace_id=secrets.token_hex(16),
        span_id=secrets.token_hex(8),
        parent_span_id=None,
        name="chat sim-large",
        kind="client",
        start_ns=int(at * 1e9),
        end_ns=int(at * 1e9) + 1_000_000,
        status_code="unset",
        operation="chat",
        agent=agent,
        prompt_version=prompt_version,
        output_tokens=output_tokens,
        finish_reasons=[finish],
    )


def window(
    rng: random.Random, agent: str, start: float, n: int, mean: float, finish: dict[str, float]
) -> list[SpanRecord]:
    reasons, weights = zip(*finish.items(), strict=True)
    return [
        chat_span(
            agent, start + i * 10, max(1, int(rng.gauss(mean, mean / 5))), rng.choices(reasons, weights)[0]
        )
        for i in range(n)
    ]


@pytest.mark.anyio
async def test_a_shift_raises_the_signal_and_an_unchanged_stream_does_not(database_url: str) -> None:
    rng = random.Random(7)
    usual = {"stop": 0.9, "tool_calls": 0.1}
    spans = (
        window(rng, "steady", NOW - 2 * HOUR, 200, 120, usual)
        + window(rng, "steady", NOW - HOUR, 200, 120, usual)
        + window(rng, "verbose", NOW - 2 * HOUR, 200, 120, usual)
        # the same agent after a model change: longer answers, often cut at the token limit
        + window(rng, "verbose", NOW - HOUR, 200, 380, {"stop": 0.55, "length": 0.35, "tool_calls": 0.1})
    )
    store = await Store.open(database_url)
    try:
        await SpanStore(store).write(spans, [])
        signals = {
            s.subject: s
            for s in await drift(store, reference=(NOW - 2 * HOUR, NOW - HOUR), current=(NOW - HOUR, NOW))
        }
    finally:
        await store.close()
    steady, verbose = signals["steady"], signals["verbose"]
    assert (steady.reference_n, steady.current_n) == (200, 200)
    assert not steady.drifted, steady.reasons
    assert steady.length_psi is not None and steady.length_psi < 0.1
    assert verbose.drifted
    assert verbose.length_psi is not None and verbose.length_psi > 1.0
    assert verbose.finish_tvd is not None and verbose.finish_tvd > 0.3
    assert [r.split(" ")[0] for r in verbose.reasons] == ["output", "finish"]


def test_too_few_samples_flag_nothing() -> None:
    few = [Sample(10, ("stop",), "t", "s")] * 5
    many = [Sample(1000, ("length",), "t", "s")] * 5
    signal = compare("a", "agent", few, many)
    assert signal.length_psi is None and not signal.drifted


def test_refusals_need_a_real_difference() -> None:
    before = [Sample(50, ("stop",), "t", "s")] * 195 + [Sample(5, ("content_filter",), "t", "s")] * 5
    noise = [Sample(50, ("stop",), "t", "s")] * 193 + [Sample(5, ("content_filter",), "t", "s")] * 7
    wave = [Sample(50, ("stop",), "t", "s")] * 160 + [Sample(5, ("content_filter",), "t", "s")] * 40
    assert not any("refusal" in r for r in compare("a", "agent", before, noise).reasons)
    refused = compare("a", "agent", before, wave)
    assert refused.refusal_delta == pytest.approx(0.175)
    assert any(r.startswith("refusal rate changed by +17.5%") for r in refused.reasons)


def test_the_statistics_against_known_values() -> None:
    assert psi([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 10, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 10) == pytest.approx(
        0.0
    )
    assert tvd(Counter({"a": 1, "b": 1}), Counter({"a": 1, "b": 1})) == 0.0
    assert tvd(Counter({"a": 1}), Counter({"b": 1})) == 1.0
    # z for 5/200 vs 40/200: pooled p = 0.1125, se = sqrt(p(1-p)(2/200)) = 0.031598, z = 0.175 / se
    assert two_proportion_z(5, 200, 40, 200) == pytest.approx(5.53831, rel=1e-5)


def test_an_embedder_moves_the_signal_when_outputs_change_meaning() -> None:
    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] if "weather" in t else [0.0, 1.0] for t in texts]

    samples = [Sample(50, ("stop",), "t", "s")] * 40
    same = compare(
        "a", "agent", samples, samples, outputs=(["weather"] * 40, ["weather"] * 40), embedder=embed
    )
    moved = compare(
        "a", "agent", samples, samples, outputs=(["weather"] * 40, ["refund"] * 40), embedder=embed
    )
    assert same.embedding_distance == pytest.approx(0.0) and not same.drifted
    assert moved.embedding_distance == pytest.approx(1.0) and moved.drifted
