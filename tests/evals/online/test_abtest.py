"""A/B on live traffic: the hash split (stable, at the configured share, salted per test) and the report's
paired difference over inputs both arms answered, waiting until enough pairs arrived."""

from __future__ import annotations

import math
import secrets
from pathlib import Path

import pytest

from fleetplane.evals.abtest import ABTest, Arm, report
from fleetplane.evals.online.items import OnlineItems, ScoreRow
from fleetplane.store.db import Store
from fleetplane.store.evals_online import eval_online_items

TEST = ABTest("big-vs-fast", Arm(model="fast"), Arm(model="big"), split=0.5, min_pairs=20, seed=7)


def test_the_split_is_stable_salted_and_at_the_configured_share() -> None:
    keys = [f"{i:032x}" for i in range(10_000)]
    in_a = sum(TEST.assign(k) == "a" for k in keys)
    sd = math.sqrt(10_000 * 0.25)
    assert 5_000 - 4 * sd <= in_a <= 5_000 + 4 * sd
    assert [TEST.assign(k) for k in keys[:50]] == [TEST.assign(k.upper()) for k in keys[:50]]
    other = ABTest("other", Arm(model="fast"), Arm(model="big"))
    assert sum(TEST.assign(k) != other.assign(k) for k in keys) > 4_000  # a different salt, a different split
    tenth = ABTest("tenth", Arm(prompt_version="v1"), Arm(prompt_version="v2"), split=0.1)
    assert 1_000 - 4 * 30 <= sum(tenth.assign(k) == "a" for k in keys) <= 1_000 + 4 * 30


def test_arms_and_split_are_checked() -> None:
    with pytest.raises(ValueError, match="an arm is exactly one of a model group or a prompt version"):
        Arm(model="a", prompt_version="v1")
    with pytest.raises(ValueError, match="split must be between 0 and 1, got 1"):
        ABTest("t", Arm(model="a"), Arm(model="b"), split=1)
    with pytest.raises(ValueError, match="the two arms are the same"):
        ABTest("t", Arm(model="a"), Arm(model="a"))


def trace_in(arm: str) -> str:
    while True:
        trace = secrets.token_hex(16)
        if TEST.assign(trace) == arm:
            return trace


async def answer(store: Store, trace: str, model: str, digest: str, value: float) -> None:
    row = {
        "trace_id": trace,
        "span_id": "1" * 16,
        "start_ns": 1,
        "seen_at": 0.0,
        "rule": "r",
        "model": model,
        "agent": None,
        "team": None,
        "prompt_version": None,
        "input_digest": digest,
        "sample_u": 0.5,
        "sampled": False,
        "flags": [],
        "judge_status": "none",
        "judge_error": None,
        "subject": {},
    }
    items = OnlineItems(store)
    assert await items.claim([row]) == {(trace, "1" * 16)}
    await items.add_scores(
        [ScoreRow(trace, "1" * 16, "llm-rubric", "quality", "judge", value, None, "", [], 0.0, 0.0, {}, 0.0)]
    )


@pytest.mark.anyio
async def test_report_waits_for_pairs_then_gives_the_paired_difference(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        for i in range(10):
            await answer(store, trace_in("a"), "fast", f"in{i}", 0.5)
            await answer(store, trace_in("b"), "big", f"in{i}", 0.7)
        await answer(store, trace_in("a"), "big", "in0", 0.0)  # routed against the split: not used
        await answer(store, trace_in("a"), "other", "in0", 0.0)  # neither arm
        waiting = await report(store, TEST)
        assert waiting["misrouted"] == 1
        [dim] = waiting["dimensions"]
        assert (dim["pairs"], dim["ready"], dim["difference"], dim["a_n"], dim["b_n"]) == (
            10,
            False,
            None,
            10,
            10,
        )
        assert dim["a_mean"] == pytest.approx(0.5) and dim["b_mean"] == pytest.approx(0.7)

        for i in range(10, 25):
            await answer(store, trace_in("a"), "fast", f"in{i}", 0.4 + (i % 3) * 0.1)
            await answer(store, trace_in("b"), "big", f"in{i}", 0.6 + (i % 3) * 0.1)
        await answer(store, trace_in("b"), "big", "only-b", 1.0)  # no partner: not a pair
        [dim] = (await report(store, TEST))["dimensions"]
        assert dim["ready"] is True and dim["pairs"] == 25 and dim["b_n"] == 26
        assert dim["difference"] == pytest.approx(0.2)
        assert dim["low"] == pytest.approx(0.2) and dim["high"] == pytest.approx(
            0.2
        )  # every pair differs by 0.2
        async with store.engine.connect() as conn:
            assert len((await conn.execute(eval_online_items.select())).all()) == 53
    finally:
        await store.close()
