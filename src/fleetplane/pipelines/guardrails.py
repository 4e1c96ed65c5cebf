"""Guardrails: the blocking checks of a pipeline's `validate` stage, on a step's input (`at: before`), its
output, or the run's output.

A check is a schema (JSON Schema 2020-12), an assertion in the expression language, a deny-list of
case-insensitive substrings, regular expressions that must not match, or a model's verdict through the
gateway. Every string (and number) in the checked value is searched, so a card number in a nested field
is found. The result is a `Verdict`; the engine records it and acts on `on_fail`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from fleetplane.manifests.expression_templates import compile_condition, render
from fleetplane.manifests.expressions import ExprError
from fleetplane.manifests.pipeline import Validation
from fleetplane.pipelines.gateway import GatewayClient, GatewayError

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"pass": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["pass", "reason"],
}


@dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    on_fail: str
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "onFail": self.on_fail, "reasons": self.reasons}


async def check(
    validation: Validation, value: Any, scope: Mapping[str, Any], gateway: GatewayClient | None
) -> Verdict:
    """Run every check of `validation` on `value` (`scope` is what the assertion and prompt may read)."""
    reasons: list[str] = []
    if validation.schema_ is not None:
        for error in sorted(Draft202012Validator(validation.schema_).iter_errors(value), key=str)[:3]:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            reasons.append(f"schema: at {where}: {error.message}")
    if validation.assert_ is not None:
        try:
            if not compile_condition(validation.assert_).evaluate(scope):
                reasons.append(f"assert: {validation.assert_} is false")
        except ExprError as exc:
            reasons.append(f"assert: {exc}")
    texts = list(_texts(value))
    for word in validation.deny:
        if any(word.lower() in text.lower() for text in texts):
            reasons.append(f"deny: the value contains {word!r}")
    for pattern in validation.regex:
        if any(re.search(pattern, text) for text in texts):
            reasons.append(f"regex: the value matches {pattern!r}")
    if validation.llm is not None:
        reasons.extend(await _llm(validation, scope, gateway))
    return Verdict(validation.name, not reasons, validation.on_fail, reasons)


async def _llm(validation: Validation, scope: Mapping[str, Any], gateway: GatewayClient | None) -> list[str]:
    assert validation.llm is not None
    if gateway is None:
        return ["llm: no gateway is configured (FLEETPLANE_GATEWAY_URL), so the check cannot pass"]
    prompt = render(validation.llm.prompt, scope)
    text = prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode()
    try:
        answer = await gateway.function(validation.llm.model, text, "verdict", VERDICT_SCHEMA)
    except GatewayError as exc:
        return [f"llm: {exc}"]  # a check that cannot be made fails closed
    if answer.arguments.get("pass") is True:
        return []
    return [f"llm: {answer.arguments.get('reason') or 'the model did not pass it'}"]


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
