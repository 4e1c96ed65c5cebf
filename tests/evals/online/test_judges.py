"""Judges: the family rule (refused at load and per item, override recorded), pairwise order flips,
panels pooled, and the verdict read from the forced tool call. The judge's model is a mock transport
here; the production-path test runs judges against the real gateway and simulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from fleetplane.evals.judges import FamilyError, JudgeClient, JudgeError, ModelCatalog, ModelInfo
from fleetplane.evals.judges.suite import check_suite_judges
from fleetplane.evals.scoring import Sample, make_scorer
from fleetplane.manifests.evalsuite import EvalSuite

pytestmark = pytest.mark.anyio

CATALOG = ModelCatalog(
    {
        "fast": ModelInfo("fast", "gpt", 1.0, 2.0),
        "big-gpt": ModelInfo("big-gpt", "gpt", 5.0, 15.0),
        "claude": ModelInfo("claude", "claude", 3.0, 15.0),
        "llama": ModelInfo("llama", "llama", 0.5, 0.5),
    }
)
Verdict = Callable[[str, str], dict[str, Any]]  # (model, user prompt) -> tool arguments


def client(verdict: Verdict, calls: list[dict[str, Any]] | None = None) -> JudgeClient:
    def handle(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        if calls is not None:
            calls.append({"body": body, "headers": dict(request.headers)})
        arguments = verdict(body["model"], body["messages"][-1]["content"])
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "record_verdict", "arguments": orjson.dumps(arguments).decode()},
                }
            ],
        }
        payload = {
            "choices": [{"message": message}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100},
        }
        return httpx.Response(200, json=payload)

    return JudgeClient("http://gateway", "sk-judge", CATALOG, transport=httpx.MockTransport(handle))


def sample(model: str | None = "fast", output: str = "good answer", reference: str | None = None) -> Sample:
    return Sample(
        case_id="c1", input="How do I reset my password?", output=output, reference=reference, model=model
    )


def test_same_family_judge_is_refused_when_the_scorer_is_built() -> None:
    with pytest.raises(FamilyError, match="judge 'big-gpt' is of family 'gpt', the same as target 'fast'"):
        make_scorer(
            "llm-rubric",
            {
                "rubric": "helpful",
                "judge": "big-gpt",
                "target_model": "fast",
                "client": client(lambda m, p: {"score": 5, "reason": "ok"}),
            },
        )


def test_unknown_judge_model_is_refused() -> None:
    with pytest.raises(FamilyError, match="judge model 'nope' is not a Model in this fleet"):
        make_scorer("llm-rubric", {"rubric": "x", "judge": "nope", "client": client(lambda m, p: {})})


async def test_same_family_judge_is_refused_at_run_time_for_the_answering_model() -> None:
    calls: list[dict[str, Any]] = []
    scorer = make_scorer(
        "llm-rubric",
        {
            "rubric": "helpful",
            "judge": "big-gpt",
            "client": client(lambda m, p: {"score": 5, "reason": "ok"}, calls),
        },
    )
    with pytest.raises(FamilyError, match="same as target 'fast'"):
        await scorer.score(sample(model="fast"))
    assert calls == []  # refused before any call was paid for
    score = await scorer.score(sample(model="llama"))
    assert score.value == 1.0 and "same_family_override" not in score.details


async def test_override_is_recorded_in_the_score() -> None:
    scorer = make_scorer(
        "llm-rubric",
        {
            "rubric": "helpful",
            "judge": "big-gpt",
            "allowSameFamily": True,
            "target_model": "fast",
            "client": client(lambda m, p: {"score": 4, "reason": "fine"}),
        },
    )
    score = await scorer.score(sample(model="fast"))
    assert score.details["same_family_override"] is True
    assert score.details["judges"] == [
        {
            "judge": "big-gpt",
            "judge_family": "gpt",
            "target_model": "fast",
            "target_family": "gpt",
            "same_family_override": True,
        }
    ]
    assert score.value == 0.75 and score.passed is True
    assert score.cost_usd == pytest.approx((1000 * 5.0 + 100 * 15.0) / 1e6)


async def test_rubric_call_forces_the_verdict_tool_and_names_itself() -> None:
    calls: list[dict[str, Any]] = []
    scorer = make_scorer(
        "llm-rubric",
        {
            "rubric": "cites the policy",
            "judge": "claude",
            "client": client(lambda m, p: {"score": 2, "reason": "thin"}, calls),
        },
    )
    score = await scorer.score(sample())
    [call] = calls
    assert call["body"]["tool_choice"] == {"type": "function", "function": {"name": "record_verdict"}}
    assert call["body"]["tools"][0]["function"]["parameters"]["properties"]["score"]["maximum"] == 5
    assert call["headers"]["x-fleetplane-prompt-name"] == "fleetplane.judge.rubric"
    assert call["headers"]["authorization"] == "Bearer sk-judge"
    assert "cites the policy" in call["body"]["messages"][-1]["content"]
    assert score.value == 0.25 and score.passed is False and score.flags == ()


async def test_rubric_panel_is_pooled_and_wide_disagreement_is_uncertain() -> None:
    by_model = {"claude": 5, "llama": 1}
    scorer = make_scorer(
        "llm-rubric",
        {
            "rubric": "r",
            "judges": ["claude", "llama"],
            "client": client(lambda m, p: {"score": by_model[m], "reason": m}),
        },
    )
    score = await scorer.score(sample())
    assert score.value == 0.5
    assert score.details["values"] == {"claude": 1.0, "llama": 0.0}
    assert score.flags == ("judge-uncertain",)


async def test_rubric_out_of_range_score_is_a_judge_error() -> None:
    scorer = make_scorer(
        "llm-rubric",
        {"rubric": "r", "judge": "claude", "client": client(lambda m, p: {"score": 9, "reason": "x"})},
    )
    with pytest.raises(JudgeError, match=r"gave score 9; expected 1\.\.5"):
        await scorer.score(sample())


async def test_pairwise_position_bias_is_an_order_disagreement() -> None:
    # A judge that always prefers whatever is shown first: the two orders disagree.
    scorer = make_scorer(
        "llm-pairwise", {"judge": "claude", "client": client(lambda m, p: {"winner": "A", "reason": "first"})}
    )
    score = await scorer.score(sample(output="mine", reference="theirs"))
    assert score.flags == ("order-disagreement",)
    assert score.value == 0.5 and score.passed is None
    assert score.details["order_disagreement"] == ["claude"]
    assert score.details["verdicts"] == {"claude/answer-first": "A", "claude/answer-second": "A"}


async def test_pairwise_consistent_judge_agrees_across_orders() -> None:
    def prefers_good(model: str, prompt: str) -> dict[str, Any]:
        a = prompt.split("ANSWER A:\n", 1)[1].split("\n\nANSWER B:", 1)[0]
        return {"winner": "A" if "good" in a else "B", "reason": "content"}

    scorer = make_scorer("llm-pairwise", {"judges": ["claude", "llama"], "client": client(prefers_good)})
    win = await scorer.score(sample(output="a good answer", reference="a poor answer"))
    assert win.flags == () and win.value == 1.0 and win.passed is True
    loss = await scorer.score(sample(output="a poor answer", reference="a good answer"))
    assert loss.flags == () and loss.value == 0.0 and loss.passed is False


def suite(judge_params: str, allow: bool = False) -> EvalSuite:
    return EvalSuite.model_validate(
        {
            "apiVersion": "fleetplane.dev/v1alpha1",
            "kind": "EvalSuite",
            "metadata": {"name": "s"},
            "spec": {
                "target": {"model": "fast"},
                "judge": "big-gpt",
                "allowSameFamilyJudge": allow,
                "cases": [{"id": "a", "input": "hi"}],
                "dimensions": [{"name": "quality", "scorers": [orjson.loads(judge_params)]}],
            },
        }
    )


def test_suite_load_refuses_a_same_family_judge_and_records_an_override() -> None:
    with pytest.raises(FamilyError, match="suite s: dimension 'quality': judge 'big-gpt' is of family 'gpt'"):
        check_suite_judges(suite('{"type": "llm-rubric", "rubric": "r"}'), CATALOG)
    [check] = check_suite_judges(suite('{"type": "llm-rubric", "rubric": "r"}', allow=True), CATALOG)
    assert check.overridden and check.details()["same_family_override"] is True
    [other] = check_suite_judges(suite('{"type": "llm-rubric", "rubric": "r", "judge": "claude"}'), CATALOG)
    assert not other.overridden and other.judge_family == "claude"
