"""Built-in scorers against known values (BLEU/chrF from sacrebleu 2.6, ROUGE-L from rouge-score 0.1.2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fleetplane.evals.scorers import overlap
from fleetplane.evals.scoring import Sample, Score, ScorerError, Usage, make_scorer, scorer_types, timed_score

PAIRS = [
    # candidate, reference, sacrebleu.sentence_bleu, sacrebleu.sentence_chrf, rouge-score rougeL F1
    (
        "The cat sat on the mat.",
        "The cat is sitting on the mat.",
        42.38365628278778,
        49.6485170311433,
        10 / 13,
    ),
    (
        "Refunds take 5-7 business days, sorry!",
        "Your refund arrives in 5 to 7 business days.",
        16.784459625186194,
        43.33033564627217,
        0.5,
    ),
    ("hello", "goodbye world", 0.0, 5.660377358490566, 0.0),
    (
        "It costs $3,000.50 (approx).",
        "It costs about $3,000.50.",
        16.515821590069027,
        55.8779309443528,
        5 / 6,
    ),
]


@pytest.mark.parametrize(("candidate", "reference", "bleu", "chrf", "rouge"), PAIRS)
def test_overlap_metrics_match_the_reference_tools(
    candidate: str, reference: str, bleu: float, chrf: float, rouge: float
) -> None:
    assert overlap.bleu(candidate, reference) == pytest.approx(bleu, abs=1e-9)
    assert overlap.chrf(candidate, reference) == pytest.approx(chrf, abs=1e-9)
    assert overlap.rouge_l(candidate, reference) == pytest.approx(rouge, abs=1e-12)


def test_edit_distance_known_values() -> None:
    assert overlap.levenshtein("kitten", "sitting") == 3
    assert overlap.levenshtein("", "abc") == 3
    assert overlap.edit_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert overlap.edit_similarity("", "") == 1.0


def _score(kind: str, output: str, params: dict[str, Any] | None = None, **sample: Any) -> Score:
    scorer = make_scorer(kind, params or {})
    return asyncio.run(scorer.score(Sample(case_id="c", input="q", output=output, **sample)))


def test_exact_contains_regex() -> None:
    assert _score("exact", " Paris ", expected="Paris").passed is True
    assert _score("exact", "paris", expected="Paris").passed is False
    assert _score("exact", "paris", {"ignoreCase": True}, expected="Paris").passed is True
    assert _score("exact", '{"a": 1}', expected={"a": 1}).passed is True
    partial = _score("contains", "refund in 5 days", {"value": ["refund", "sorry"]})
    assert (partial.value, partial.passed, partial.explanation) == (0.5, False, "missing 'sorry'")
    assert _score("contains", "refund", {"value": ["refund", "sorry"], "mode": "any"}).passed is True
    assert (
        _score("contains", "As an AI", {"value": "as an ai", "not": True, "ignoreCase": True}).passed is False
    )
    assert _score("regex", "order #12345 shipped", {"pattern": r"#\d{5}\b"}).passed is True
    # A case's own argument wins over the suite's.
    assert _score("regex", "code XY", {"pattern": r"\d"}, vars={"regex": "XY"}).passed is True


def test_json_schema_and_json_diff() -> None:
    schema = {"type": "object", "required": ["label"], "properties": {"label": {"enum": ["refund", "other"]}}}
    assert _score("json-schema", '{"label": "refund"}', {"schema": schema}).passed is True
    bad = _score("json-schema", '{"label": "cancel"}', {"schema": schema})
    assert bad.passed is False and bad.explanation.startswith("label: 'cancel' is not one of")
    not_json = _score("json-schema", "label: refund", {"schema": schema})
    assert not_json.explanation == "the answer is not JSON: Expecting value at line 1 column 1"
    fenced = _score("json-schema", '```json\n{"label": "other"}\n```', {"schema": schema})
    assert fenced.passed is True
    diff = _score(
        "json-diff", '{"a": 1, "b": {"c": 2, "d": 3}}', expected={"a": 1, "b": {"c": 2, "d": 4}, "e": 5}
    )
    assert diff.value == pytest.approx(2 / 4)
    assert diff.passed is False
    assert diff.explanation == "2 of 4 fields differ: b.d, e"


def test_numeric_tolerance() -> None:
    assert _score("numeric", "The total is 3,000.49 dollars", {"tolerance": 0.01}, expected="3000.5").passed
    assert not _score("numeric", "The total is 3,000.40", {"tolerance": 0.01}, expected=3000.5).passed
    assert _score("numeric", "between 9 and 105", {"relativeTolerance": 0.05}, expected=100).passed
    assert _score("numeric", "between 9 and 105", {"pick": "first"}, expected=100).passed is False
    assert _score("numeric", "no digits", expected=1).explanation == "no number in the answer"


def test_similarity_scorers_scale_to_unit_interval() -> None:
    s = _score(
        "bleu", "The cat sat on the mat.", {"threshold": 0.4}, reference="The cat is sitting on the mat."
    )
    assert s.value == pytest.approx(0.4238365628278778) and s.passed is True
    c = _score("chrf", "The cat sat on the mat.", expected="The cat is sitting on the mat.")
    assert c.value == pytest.approx(0.496485170311433) and c.passed is None
    assert _score("rouge-l", "a b", {"value": "a b"}).value == 1.0
    assert _score("edit-distance", "kitten", expected="sitting").value == pytest.approx(4 / 7)


def test_usage_scorers_read_the_target_call() -> None:
    cost = _score("cost", "x", {"max": 0.001}, cost_usd=0.002)
    assert (cost.value, cost.unit, cost.passed) == (0.002, "raw", False)
    assert _score("latency", "x", latency_ms=120.0).value == 120.0
    tokens = _score("tokens", "x", {"which": "output", "max": 10}, usage=Usage(7, 9))
    assert (tokens.value, tokens.passed) == (9.0, True)
    missing = _score("cost", "x")
    assert (missing.passed, missing.explanation) == (False, "the target reported no cost")


def test_heuristics() -> None:
    assert _score("length", "one two three", {"max": 2, "unit": "words"}).flags == ("too-long",)
    assert _score("length", "hi", {"min": 3}).explanation == "2 chars, fewer than 3"
    refusal = _score("refusal", "I'm sorry, but I can't help with that.")
    assert (refusal.passed, refusal.flags) == (False, ("refusal",))
    assert _score("refusal", "Your refund is on its way.").passed is True
    assert _score("refusal", "I cannot assist with that request.", {"expect": "refusal"}).passed is True
    assert _score("format", '{"a": 1}', {"format": "json-object"}).passed is True
    assert _score("format", "[1]", {"format": "json-object"}).passed is False
    assert _score("format", "- a\n- b\n1. c", {"format": "bullet-list"}).passed is True
    assert _score("format", "a\nb", {"format": "single-line"}).passed is False


def test_cheap_scorers_are_timed_and_priced_per_item() -> None:
    scorer = make_scorer("refusal", {})
    score = asyncio.run(timed_score(scorer, Sample(case_id="c", input="q", output="fine " * 200)))
    assert score.latency_ms > 0
    assert 0 <= score.cost_usd < 1e-6  # a CPU-millisecond costs ~1e-8 dollars


@pytest.mark.parametrize(
    ("kind", "params", "message", "param"),
    [
        ("nope", {}, "unknown scorer type 'nope'; expected one of: ", None),
        (
            "regex",
            {"pattern": "("},
            "scorer 'regex': bad pattern '(': missing ), unterminated subpattern",
            "pattern",
        ),
        ("contains", {"mode": "some"}, "scorer 'contains': 'mode' must be all or any, found 'some'", "mode"),
        ("length", {"min": "3"}, "scorer 'length': 'min' must be a whole number, found '3'", "min"),
        ("format", {}, "scorer 'format' needs 'format'", "format"),
        ("exact", {"bogus": 1}, "scorer 'exact' has no parameter 'bogus'", "bogus"),
        ("json-schema", {"schema": {"type": 3}}, "scorer 'json-schema': not a valid schema: ", "schema"),
    ],
)
def test_bad_scorer_parameters_are_named(
    kind: str, params: dict[str, Any], message: str, param: str | None
) -> None:
    with pytest.raises(ScorerError) as caught:
        make_scorer(kind, params)
    assert str(caught.value).startswith(message)
    assert caught.value.param == param


def test_registry_lists_every_builtin_type_with_its_tier() -> None:
    types = scorer_types()
    tiers = {name: t.tier for name, t in types.items()}
    for name in ("exact", "contains", "regex", "json-schema", "json-diff", "numeric", "edit-distance"):
        assert tiers[name] == "deterministic"
    for name in ("rouge-l", "bleu", "chrf"):
        assert tiers[name] == "deterministic"
    assert {tiers["cost"], tiers["latency"], tiers["tokens"]} == {"usage"}
    assert {tiers["length"], tiers["refusal"], tiers["format"]} == {"heuristic"}


def test_checks_score_the_share_of_a_cases_own_checks() -> None:
    structured = {"summary": "Where is my parcel", "words": 4}
    exact = _score(
        "checks", "", structured=structured, expected={"summary": "Where is my parcel", "words": 4}
    )
    assert (exact.value, exact.passed) == (1.0, True)
    contains = _score(
        "checks",
        "",
        structured={"summary": "one two", "words": 2},
        expected={"summary": "one"},
        metadata={"match": "contains"},
    )
    assert contains.passed is True
    mixed = _score(
        "checks",
        '{"summary": "a b c", "words": 3}',
        metadata={"expectations": ["output.words == 8", "output.summary | length < 40"]},
    )
    assert (mixed.value, mixed.passed, mixed.explanation) == (0.5, False, "output.words == 8 is false")
    plain = _score("checks", "hello", {"expectations": ["output | length == 5", "input == 'q'"]})
    assert plain.passed is True
    assert _score("checks", "x").explanation == "the case has no expected answer and no expectations"
    with pytest.raises(ScorerError, match="scorer 'checks': invalid syntax"):
        make_scorer("checks", {"expectations": ["output ==="]})
