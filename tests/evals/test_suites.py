"""Suites load with their cases and scorers; other tools' case formats import; bad input is named at
file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetplane.evals.importers import read_cases
from fleetplane.evals.suites import SuiteNotFound, load_suite
from fleetplane.manifests.errors import ManifestErrors

SUITE = """\
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: answers}
spec:
  target: {model: fast}
  epochs: 2
  dimensions:
    - name: correctness
      gate: {margin: 0.05}
      scorers:
        - {type: contains}
        - {type: rouge-l, weight: 2}
    - name: cost
      goal: minimize
      scorers: [{type: cost}]
  cases:
    - {id: refund, input: "Can I get my money back?", expected: refund, fixture: billing}
  caseFiles:
    - {path: more.jsonl}
"""


def _write(
    tmp_path: Path, suite: str = SUITE, jsonl: str = '{"id": "late", "input": "Where is it?"}\n'
) -> Path:
    (tmp_path / "suite.yaml").write_text(suite)
    (tmp_path / "more.jsonl").write_text(jsonl)
    return tmp_path


def test_a_suite_loads_with_cases_from_every_file_and_scorers(tmp_path: Path) -> None:
    suite = load_suite(_write(tmp_path), "answers")
    assert [c.id for c in suite.cases] == ["refund", "late"]
    assert suite.cases[0].source == f"{tmp_path}/suite.yaml:17"
    assert suite.cases[1].source == f"{tmp_path}/more.jsonl:1"
    assert suite.cases[0].fixture == "billing"
    correctness, cost = suite.dimensions
    assert [(w, s.type) for w, s in correctness.scorers] == [(1.0, "contains"), (2.0, "rouge-l")]
    assert (correctness.raw, cost.raw) == (False, True)
    assert suite.manifest.spec.epochs == 2


def test_an_unknown_suite_names_the_ones_there(tmp_path: Path) -> None:
    with pytest.raises(SuiteNotFound) as caught:
        load_suite(_write(tmp_path), "nope")
    assert str(caught.value) == f"no EvalSuite named 'nope' in {tmp_path}; suites there: answers"


def test_an_unknown_scorer_type_is_an_error_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(ManifestErrors) as caught:
        load_suite(_write(tmp_path, SUITE.replace("{type: contains}", "{type: containz}")), "answers")
    [error] = caught.value.errors
    assert error.location == f"{tmp_path}/suite.yaml:11:18"
    assert error.path == "spec.dimensions[0].scorers[0].type"
    assert error.problem is not None and error.problem.startswith(
        "unknown scorer type 'containz'; expected one of:"
    )


def test_a_bad_scorer_parameter_points_at_the_parameter(tmp_path: Path) -> None:
    bad = SUITE.replace("{type: contains}", "{type: regex, pattern: '('}")
    with pytest.raises(ManifestErrors) as caught:
        load_suite(_write(tmp_path, bad), "answers")
    [error] = caught.value.errors
    assert str(error) == (
        f"{tmp_path}/suite.yaml:11:34: EvalSuite/answers: spec.dimensions[0].scorers[0].pattern: "
        "scorer 'regex': bad pattern '(': missing ), unterminated subpattern at position 0"
    )


def test_raw_and_ratio_scorers_cannot_share_a_dimension(tmp_path: Path) -> None:
    bad = SUITE.replace("scorers: [{type: cost}]", "scorers: [{type: cost}, {type: exact}]")
    with pytest.raises(ManifestErrors) as caught:
        load_suite(_write(tmp_path, bad), "answers")
    assert caught.value.errors[0].path == "spec.dimensions[1].scorers"
    assert caught.value.errors[0].line == 15


def test_a_bad_case_file_line_is_named(tmp_path: Path) -> None:
    jsonl = '{"id": "a", "input": "x"}\n\n{"id": "b", "input": "y",}\n{"input": "no id"}\n'
    with pytest.raises(ManifestErrors) as caught:
        load_suite(_write(tmp_path, jsonl=jsonl), "answers")
    assert [str(e) for e in caught.value.errors] == [
        f"{tmp_path}/more.jsonl:3:26: not JSON: Expecting property name enclosed in double quotes"
    ]
    with pytest.raises(ManifestErrors) as caught:
        load_suite(_write(tmp_path, jsonl='{"id": "a", "input": "x"}\n{"input": "no id"}\n'), "answers")
    assert [str(e) for e in caught.value.errors] == [f"{tmp_path}/more.jsonl:2:1: id: Field required"]


def test_a_missing_case_file_and_a_duplicate_id(tmp_path: Path) -> None:
    with pytest.raises(ManifestErrors) as caught:
        load_suite(_write(tmp_path, SUITE.replace("more.jsonl", "gone.jsonl")), "answers")
    assert [str(e) for e in caught.value.errors] == [
        f"{tmp_path}/suite.yaml:19:14: EvalSuite/answers: spec.caseFiles[0].path: "
        f"no such file: {tmp_path}/gone.jsonl"
    ]
    with pytest.raises(ManifestErrors) as caught:
        load_suite(_write(tmp_path, jsonl='{"id": "refund", "input": "x"}\n'), "answers")
    assert [str(e) for e in caught.value.errors] == [
        f"{tmp_path}/more.jsonl:1:1: id: case id 'refund' is used twice; first at {tmp_path}/suite.yaml:17"
    ]


def test_a_suite_needs_exactly_one_target(tmp_path: Path) -> None:
    with pytest.raises(ManifestErrors) as caught:
        load_suite(
            _write(tmp_path, SUITE.replace("{model: fast}", "{model: fast, agent: triage}")), "answers"
        )
    [error] = caught.value.errors
    assert (error.line, error.path) == (5, "spec.target")
    assert "2 targets given" in str(error) and "expected exactly one of model, agent, skill, pipeline" in str(
        error
    )


def test_promptfoo_tests_import(tmp_path: Path) -> None:
    file = tmp_path / "promptfooconfig.yaml"
    file.write_text(
        """\
prompts: ["Answer: {{question}}"]
tests:
  - description: Capital of France
    vars: {question: "What is the capital of France?"}
    assert:
      - {type: equals, value: Paris}
      - {type: javascript, value: output.length < 20}
  - vars: {topic: refunds, tone: kind}
    assert:
      - {type: icontains, value: refund}
      - {type: regex, value: "\\\\d+ days"}
"""
    )
    first, second = read_cases(file, str(file), "promptfoo")
    assert (first.id, first.input, first.expected) == (
        "capital-of-france",
        "What is the capital of France?",
        "Paris",
    )
    assert first.vars == {"exact": "Paris"}
    assert first.metadata == {"promptfoo_unmapped": [{"type": "javascript", "value": "output.length < 20"}]}
    assert first.source == f"{file}:3"
    assert (second.id, second.input) == ("test-2", {"topic": "refunds", "tone": "kind"})
    assert second.vars == {"contains": "refund", "regex": r"\d+ days"}


def test_openai_evals_jsonl_import(tmp_path: Path) -> None:
    file = tmp_path / "samples.jsonl"
    lines = [
        {
            "input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
            "ideal": "4",
        },
        {"input": "Name a primary colour", "ideal": ["red", "blue", "yellow"]},
    ]
    file.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    a, b = read_cases(file, str(file), "openai-evals")
    assert (a.id, a.expected, a.input[1]["content"]) == ("line-1", "4", "2+2?")
    assert (b.id, b.expected, b.metadata) == ("line-2", "red", {"ideal": ["red", "blue", "yellow"]})
    assert b.vars == {"contains": {"value": ["red", "blue", "yellow"]}}
    file.write_text('{"ideal": "4"}\n')
    with pytest.raises(ManifestErrors) as caught:
        read_cases(file, str(file), "openai-evals")
    assert str(caught.value) == f"{file}:1:1: expected an OpenAI Evals sample: {{input, ideal}}"


def test_agent_skills_evals_json_import(tmp_path: Path) -> None:
    file = tmp_path / "evals.json"
    file.write_text(
        json.dumps(
            {
                "skill_name": "summarize",
                "evals": [
                    {
                        "id": 1,
                        "prompt": "Summarise: late parcel",
                        "expected_output": "late",
                        "expectations": ["short"],
                    },
                    {
                        "id": "refund",
                        "input": {"text": "money back"},
                        "expected": {"label": "refund"},
                        "match": "exact",
                    },
                ],
            },
            indent=2,
        )
    )
    one, two = read_cases(file, str(file), "agent-skills")
    assert (one.id, one.input, one.expected) == ("1", "Summarise: late parcel", "late")
    assert one.metadata == {"expectations": ["short"], "skill_name": "summarize"}
    assert one.source == f"{file}:4"
    assert (two.id, two.input, two.expected) == ("refund", {"text": "money back"}, {"label": "refund"})
    file.write_text('{"evals": {"id": 1}}')
    with pytest.raises(ManifestErrors) as caught:
        read_cases(file, str(file), "agent-skills")
    assert str(caught.value) == f"{file}:1:11: expected a list of evals (or a mapping with a 'evals' list)"
