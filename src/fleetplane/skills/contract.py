"""What a skill promises, as values: its reference, contract, effects, tool rules and retry policy.

These are what the pipelines wing reads to plan a step (how to retry it, whether it may run twice, which
tool calls need a human), so they are plain frozen dataclasses with no behaviour beyond answering
questions about themselves. `to_json`/`from_json` are the registry's stored form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from fleetplane.manifests.expression_templates import compile_condition
from fleetplane.manifests.expressions import ExprError

EffectKind = Literal["pure", "read", "write", "external"]
Approval = Literal["never", "always", "when"]
EFFECT_KINDS: tuple[EffectKind, ...] = ("pure", "read", "write", "external")
APPROVALS: tuple[Approval, ...] = ("never", "always", "when")
RETRY_ON = ("timeout", "transient")
TOOL_RULE_NAMES = frozenset({"args", "input"})


@dataclass(frozen=True)
class SkillRef:
    """One exact, content-addressed skill: `digest` is `sha256:<hex>` of its packed archive."""

    name: str
    version: str
    digest: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Effects:
    kind: EffectKind
    idempotent: bool
    at_most_once: bool
    reconcile: str | None  # "module:function" under scripts/: did the side effect happen?

    @property
    def rank(self) -> int:
        """pure < read < write < external: how far a step's effects reach beyond itself."""
        return EFFECT_KINDS.index(self.kind)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base: float  # seconds before the second attempt; doubled each time
    cap: float  # the longest wait between attempts
    retry_on: tuple[str, ...]  # SkillError kinds worth another attempt: timeout, transient

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based), before jitter."""
        return float(min(self.cap, self.base * 2 ** max(attempt - 1, 0)))


@dataclass(frozen=True)
class ToolRule:
    name: str
    approval: Approval
    when: str | None  # an expression over `args` (the tool call's arguments) and `input`

    def requires_approval(self, args: Mapping[str, Any], input: Mapping[str, Any] | None = None) -> bool:
        """Whether a call with these arguments waits for a human. A `when` that cannot be evaluated
        (a missing argument, a type mismatch) asks for approval: the rule fails closed."""
        if self.approval != "when":
            return self.approval == "always"
        try:
            condition = compile_condition(self.when or "true", TOOL_RULE_NAMES)
            return bool(condition.evaluate({"args": dict(args), "input": dict(input or {})}))
        except ExprError:
            return True


@dataclass(frozen=True)
class Contract:
    name: str
    version: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    effects: Effects
    tools: tuple[ToolRule, ...]
    retry: RetryPolicy
    timeout: float
    guardrails: tuple[dict[str, Any], ...]
    model: str | None  # the model group a prompt skill asks the gateway for; None for Python skills

    def tool(self, name: str) -> ToolRule | None:
        return next((t for t in self.tools if t.name == name), None)


def to_json(contract: Contract) -> dict[str, Any]:
    return {
        "name": contract.name,
        "version": contract.version,
        "description": contract.description,
        "input": contract.input_schema,
        "output": contract.output_schema,
        "effects": {
            "kind": contract.effects.kind,
            "idempotent": contract.effects.idempotent,
            "atMostOnce": contract.effects.at_most_once,
            "reconcile": contract.effects.reconcile,
        },
        "tools": [{"name": t.name, "approval": t.approval, "when": t.when} for t in contract.tools],
        "retry": {
            "maxAttempts": contract.retry.max_attempts,
            "backoff": {"base": contract.retry.base, "cap": contract.retry.cap},
            "retryOn": list(contract.retry.retry_on),
        },
        "timeout": contract.timeout,
        "guardrails": [dict(g) for g in contract.guardrails],
        "model": contract.model,
    }


def from_json(data: Mapping[str, Any]) -> Contract:
    effects, retry = data["effects"], data["retry"]
    return Contract(
        name=data["name"],
        version=data["version"],
        description=data["description"],
        input_schema=dict(data["input"]),
        output_schema=dict(data["output"]),
        effects=Effects(
            cast(EffectKind, effects["kind"]),
            bool(effects["idempotent"]),
            bool(effects["atMostOnce"]),
            effects.get("reconcile"),
        ),
        tools=tuple(ToolRule(t["name"], cast(Approval, t["approval"]), t.get("when")) for t in data["tools"]),
        retry=RetryPolicy(
            int(retry["maxAttempts"]),
            float(retry["backoff"]["base"]),
            float(retry["backoff"]["cap"]),
            tuple(retry["retryOn"]),
        ),
        timeout=float(data["timeout"]),
        guardrails=tuple(dict(g) for g in data["guardrails"]),
        model=data.get("model"),
    )
