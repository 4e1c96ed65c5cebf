"""A skill folder is checked as a whole: SKILL.md by the Agent Skills rules, skill.yaml field by field,
evals against the input schema; every problem at its file:line:column."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from skilltools import FIXTURES, edit

from fleetplane.skills.errors import SkillError, SkillInvalid
from fleetplane.skills.folder import read_folder


def problems(folder: Path) -> list[str]:
    with pytest.raises(SkillInvalid) as caught:
        read_folder(folder)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("name", ["summarize", "send-refund", "classify-ticket"])
def test_the_fixtures_are_valid(name: str) -> None:
    folder = read_folder(FIXTURES / name)
    assert folder.name == name
    assert folder.front.metadata["version"] == folder.version


def test_a_skill_reads_into_its_contract() -> None:
    folder = read_folder(FIXTURES / "send-refund")
    contract = folder.contract
    assert (contract.effects.kind, contract.effects.at_most_once, contract.effects.reconcile) == (
        "external",
        True,
        "refunds:find",
    )
    assert [(t.name, t.approval, t.when) for t in contract.tools] == [
        ("payments.refund", "when", "args.amount > 100"),
        ("payments.lookup", "never", None),
    ]
    assert (contract.retry.max_attempts, contract.retry.base, contract.retry.cap) == (4, 0.5, 10.0)
    assert contract.retry.retry_on == ("transient", "timeout")
    assert contract.timeout == 30.0
    refund = contract.tool("payments.refund")
    assert refund is not None
    assert refund.requires_approval({"amount": 150}) is True
    assert refund.requires_approval({"amount": 50}) is False
    # An argument the rule cannot read fails closed: approval is asked for.
    assert refund.requires_approval({}) is True
    assert folder.tests == ("tests/test_refunds.py",)


def test_skill_md_is_held_to_the_agent_skills_rules(skill_copy: Callable[..., Path]) -> None:
    folder = skill_copy("summarize")
    edit(folder / "SKILL.md", "name: summarize", "name: Summarize")
    edit(folder / "SKILL.md", "license: Apache-2.0", "license: Apache-2.0\nversion: 1")
    assert problems(folder) == [
        "summarize/SKILL.md:2:7: name: found 'Summarize'; expected 1-64 lowercase letters, digits and "
        "single hyphens, not starting or ending with a hyphen",
        "summarize/SKILL.md:5:1: version: unknown field; expected one of: name, description, license, "
        "compatibility, metadata, allowed-tools",
    ]


def test_the_name_must_be_the_folders(skill_copy: Callable[..., Path]) -> None:
    folder = skill_copy("summarize", as_name="summary")
    assert problems(folder) == [
        "summary/SKILL.md:2:7: name: found 'summarize'; expected 'summary' (the name of the skill's folder)"
    ]


def test_metadata_version_must_mirror_the_contract(skill_copy: Callable[..., Path]) -> None:
    folder = skill_copy("summarize")
    edit(folder / "SKILL.md", 'version: "1.0.0"', 'version: "1.0.1"')
    assert problems(folder) == [
        "summarize/skill.yaml:1:10: version: SKILL.md's metadata.version is '1.0.1'; it must mirror this "
        "version; expected '1.0.0'"
    ]


def test_skill_yaml_faults_are_named_at_their_line(skill_copy: Callable[..., Path]) -> None:
    folder = skill_copy("send-refund")
    spec = folder / "skill.yaml"
    edit(spec, "kind: external", "kind: remote")
    edit(spec, 'when: "args.amount > 100"', 'when: "args.amount > __import__(1)"')
    edit(spec, "maxAttempts: 4", "maxAttempts: 0")
    edit(spec, "timeout: 30s", "timeout: soon\nowner: me")
    assert problems(folder) == [
        "send-refund/skill.yaml:17:9: effects.kind: found 'remote'; expected one of: pure, read, write, "
        "external",
        "send-refund/skill.yaml:22:51: tools[0].when: not an expression: calling '__import__' is not "
        "allowed; functions: contains, default, join, json, length, lower, upper in "
        "'args.amount > __import__(1)' at position 15; found 'args.amount > __import__(1)'",
        "send-refund/skill.yaml:25:16: retry.maxAttempts: found 0; expected a whole number of at least 1",
        "send-refund/skill.yaml:28:10: timeout: found 'soon'; expected a duration greater than 0: seconds, "
        "or a string like '500ms', '30s', '5m'",
        "send-refund/skill.yaml:29:1: owner: unknown field; expected one of: version, entrypoint, input, "
        "output, effects, tools, retry, timeout, guardrails",
    ]


def test_the_entrypoint_must_exist(skill_copy: Callable[..., Path]) -> None:
    folder = skill_copy("summarize")
    edit(folder / "skill.yaml", '"summarize:run"', '"summarize:main"')
    assert problems(folder) == [
        "summarize/skill.yaml:3:11: entrypoint.python: scripts/summarize.py defines no function 'main'"
    ]


def test_a_prompt_template_is_checked(skill_copy: Callable[..., Path]) -> None:
    folder = skill_copy("classify-ticket")
    edit(folder / "skill.yaml", "{% endif %}", "{% end %}")
    assert problems(folder) == [
        "classify-ticket/skill.yaml:11:9: entrypoint.prompt.template: unknown or misplaced tag '{% end %}' "
        "(tags: if, elif, else, endif, for, endfor)"
    ]


def test_a_template_fault_in_a_quoted_string_names_its_line_within(skill_copy: Callable[..., Path]) -> None:
    folder = skill_copy("classify-ticket")
    edit(folder / "skill.yaml", 'system: "You label', 'system: "{{ input.__class__ }} You label')
    assert problems(folder) == [
        "classify-ticket/skill.yaml:5:13: entrypoint.prompt.system: template line 1, column 10: the field "
        "'__class__' is not allowed (fields starting with '_' are private)"
    ]


def test_allowed_tools_must_have_approval_rules(skill_copy: Callable[..., Path]) -> None:
    folder = skill_copy("send-refund")
    edit(folder / "SKILL.md", "allowed-tools: payments.refund", "allowed-tools: payments.refund shell.exec")
    assert problems(folder) == [
        "send-refund/SKILL.md:6:16: allowed-tools: shell.exec is not declared in skill.yaml's tools; "
        "expected each allowed tool listed under tools with its approval rule"
    ]


def test_unsupported_schema_keywords_are_refused(skill_copy: Callable[..., Path]) -> None:
    folder = skill_copy("summarize")
    edit(folder / "skill.yaml", "text: {type: string, minLength: 1}", "text: {$ref: '#/defs/text'}")
    assert problems(folder) == [
        "summarize/skill.yaml:7:12: input.properties.text['$ref']: unsupported JSON Schema keyword '$ref'"
    ]


def test_eval_cases_are_checked_against_the_input_schema(skill_copy: Callable[..., Path]) -> None:
    folder = skill_copy("send-refund")
    edit(folder / "evals" / "cases.yaml", "order: ord-1", "order: 1")
    edit(folder / "evals" / "cases.yaml", "expected:", "expectations: ['output.x +']\n    expected:")
    assert problems(folder) == [
        "send-refund/evals/cases.yaml:3:20: evals[0].input.order: input.order: expected a string, found 1",
        "send-refund/evals/cases.yaml:4:20: evals[0].expectations[0]: not an expression: invalid syntax in "
        "'output.x +' at position 1; found 'output.x +'",
    ]


def test_a_missing_folder_or_file(tmp_path: Path) -> None:
    with pytest.raises(SkillError) as caught:
        read_folder(tmp_path / "nope")
    assert caught.value.kind == "not_found"
    (tmp_path / "empty").mkdir()
    assert problems(tmp_path / "empty") == [
        "empty/SKILL.md:1:1: the file is missing",
        "empty/skill.yaml:1:1: the file is missing",
    ]
