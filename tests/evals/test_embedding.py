"""The embedding similarity scorer through a real gateway (the simulator's deterministic embeddings)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import GatewayUnderTest, start_gateway, write_fleet

from fleetplane.evals.scorers.embedding import EmbeddingClient, configure_embeddings
from fleetplane.evals.scoring import Sample, ScorerError, make_scorer, timed_score
from fleetplane.sim.process import SimProcess


@pytest.fixture
def gateway(tmp_path: Path, evals_sim: SimProcess) -> Iterator[GatewayUnderTest]:
    served = start_gateway(
        write_fleet(tmp_path / "fleet"), f"sqlite:///{tmp_path / 'gw.db'}", evals_sim.base_url
    )
    try:
        yield served
    finally:
        served.stop()
        configure_embeddings(None)


def test_similarity_is_one_for_the_same_text_and_charged(gateway: GatewayUnderTest) -> None:
    # The harness's `embed` model costs $0.1 per million input tokens.
    configure_embeddings(EmbeddingClient(gateway.url, gateway.keys["full"], {"embed": 0.1}))
    scorer = make_scorer("embedding-similarity", {"model": "embed", "threshold": 0.9})
    same = Sample(
        case_id="a", input="q", output="Refunds take five days.", reference="Refunds take five days."
    )
    other = Sample(
        case_id="b", input="q", output="The parcel left the depot.", reference="Refunds take five days."
    )

    async def scenario() -> tuple[float, bool | None, float, float, bool | None, int]:
        first = await timed_score(scorer, same)
        second = await scorer.score(other)
        return first.value, first.passed, first.cost_usd, second.value, second.passed, first.details["tokens"]

    value, passed, cost, other_value, other_passed, tokens = asyncio.run(scenario())
    assert value == pytest.approx(1.0) and passed is True
    assert other_value < 0.5 and other_passed is False
    assert tokens > 0 and cost == pytest.approx(tokens * 0.1 / 1e6)
    records = gateway.usage(at_least=2)
    assert [r.model for r in records] == ["embed", "embed"]
    assert sum(r.input_tokens for r in records[:1]) == tokens


def test_a_chat_model_or_no_model_is_refused(gateway: GatewayUnderTest) -> None:
    configure_embeddings(EmbeddingClient(gateway.url, gateway.keys["full"]))
    with pytest.raises(ScorerError, match="scorer 'embedding-similarity' needs 'model'"):
        make_scorer("embedding-similarity", {})
    scorer = make_scorer("embedding-similarity", {"model": "solo"})
    sample = Sample(case_id="a", input="q", output="x", reference="y")
    with pytest.raises(RuntimeError, match="embeddings from 'solo': HTTP 400"):
        asyncio.run(scorer.score(sample))
