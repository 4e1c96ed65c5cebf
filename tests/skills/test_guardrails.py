"""Guardrails: each kind's verdict on input and output, and the faults `validate` finds in their specs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from skilltools import edit

from fleetplane.skills.errors import SkillInvalid
from fleetplane.skills.folder import read_folder
from fleetplane.skills.guardrails import violations

SPECS = (
    {"type": "regex", "on": "output", "field": "reply", "pattern": r"\b\d{13,16}\b", "mode": "deny"},
    {"type": "regex", "name": "has-at", "on": "input", "field": "email", "pattern": "@", "mode": "require"},
    {"type": "deny", "on": "both", "words": ["password"]},
    {"type": "schema", "on": "output", "schema": {"properties": {"reply": {"maxLength": 10}}}},
    {"type": "maxLength", "on": "input", "max": 40},
)


def test_verdicts() -> None:
    assert list(violations(SPECS, {"email": "a@b.c"}, "input")) == []
    assert list(violations(SPECS, {"email": "nobody", "note": "my PASSWORD is x"}, "input")) == [
        "guardrails[1] (regex 'has-at'): input.email does not match the required pattern '@'",
        "guardrails[2] (deny): input contains the denied word 'password'",
        "guardrails[4] (maxLength): input is 44 characters long, more than 40",
    ]
    assert list(violations(SPECS, {"reply": "card 4111111111111111"}, "output")) == [
        "guardrails[0] (regex): output.reply matches the denied pattern '\\\\b\\\\d{13,16}\\\\b'",
        "guardrails[3] (schema): output.reply: expected at most 10 characters, found 21",
    ]


def test_guardrail_specs_are_checked(skill_copy: Callable[..., Path]) -> None:
    folder = skill_copy("summarize")
    edit(
        folder / "skill.yaml",
        "  - {type: maxLength, on: output, field: summary, max: 400}",
        "  - {type: regex, pattern: '(unclosed'}\n  - {type: classifier}",
    )
    with pytest.raises(SkillInvalid) as caught:
        read_folder(folder)
    assert [str(p) for p in caught.value.problems] == [
        "summarize/skill.yaml:22:28: guardrails[1].pattern: not a regular expression: missing ), "
        "unterminated subpattern at position 0; found '(unclosed'",
        "summarize/skill.yaml:23:12: guardrails[2].type: found 'classifier'; expected one of: schema, deny, "
        "regex, maxLength",
    ]
