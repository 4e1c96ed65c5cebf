"""The evaluator's rows on both stores: a span is claimed once, a due item is judged by one evaluator, and
items a stopped evaluator was judging go back to due."""

from __future__ import annotations

import pytest

from fleetplane.evals.online.items import OnlineItems
from fleetplane.store.db import Store

pytestmark = pytest.mark.anyio


def row(trace: str, status: str = "due") -> dict[str, object]:
    return {
        "trace_id": trace,
        "span_id": "1" * 16,
        "start_ns": 5,
        "seen_at": 0.0,
        "rule": "r",
        "model": "m",
        "agent": None,
        "team": None,
        "prompt_version": None,
        "input_digest": None,
        "sample_u": 0.1,
        "sampled": True,
        "flags": [],
        "judge_status": status,
        "judge_error": None,
        "subject": {},
    }


async def test_claims_and_judge_turns_are_taken_once(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        first, second = OnlineItems(store), OnlineItems(store)  # two replicas on one database
        a, b = "a" * 32, "b" * 32
        assert await first.claim([row(a), row(b)]) == {(a, "1" * 16), (b, "1" * 16)}
        assert await second.claim([row(a)]) == set()
        assert await first.newest_start_ns() == 5
        assert [i.trace_id for i in await second.due(10)] == [a, b]
        assert await first.take_due(a, "1" * 16) is True
        assert await second.take_due(a, "1" * 16) is False
        assert [i.trace_id for i in await second.due(10)] == [b]
        assert await second.requeue_judging() == 1
        assert {i.trace_id for i in await first.due(10)} == {a, b}
    finally:
        await store.close()
