"""A small catalog of real Python skills implementing the pipelines' skill protocols, for engine tests.

Every execution of a skill with an effect appends one JSON line to the effects log (`EFFECTS_ENV`), so a
test — or a worker in another process — can count exactly how often each skill really ran.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EFFECTS_ENV = "PIPELINE_TEST_EFFECTS"


class FakeSkillError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class Ref:
    name: str
    version: str
    digest: str


@dataclass(frozen=True)
class Effects:
    kind: str = "pure"
    idempotent: bool = True
    at_most_once: bool = False
    reconcile: str | None = None


@dataclass(frozen=True)
class Retry:
    max_attempts: int = 3
    base: float = 0.0
    cap: float = 0.0
    retry_on: tuple[str, ...] = ("transient", "timeout")


@dataclass(frozen=True)
class Rule:
    name: str
    approval: str = "never"
    when: str | None = None


@dataclass(frozen=True)
class Contract:
    name: str
    version: str
    effects: Effects = field(default_factory=Effects)
    tools: tuple[Rule, ...] = ()
    retry: Retry = field(default_factory=Retry)
    timeout: float = 5.0
    guardrails: tuple[dict[str, Any], ...] = ()
    model: str | None = None


Fn = Callable[[dict[str, Any], Any], Awaitable[dict[str, Any]]]


@dataclass
class FakeSkill:
    ref: Ref
    contract: Contract
    fn: Fn
    reconcile_fn: Fn | None = None

    async def invoke(self, input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return await self.fn(input, ctx)

    async def reconcile(self, input: dict[str, Any], ctx: Any) -> dict[str, Any] | None:
        assert self.reconcile_fn is not None
        return await self.reconcile_fn(input, ctx)


def effects_log() -> list[dict[str, Any]]:
    path = Path(os.environ[EFFECTS_ENV])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _effect(skill: str, ctx: Any, **data: Any) -> None:
    with open(os.environ[EFFECTS_ENV], "a") as handle:
        handle.write(
            json.dumps({"skill": skill, "key": ctx.idempotency_key, "step": ctx.step_id, **data}) + "\n"
        )


async def _echo(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    _effect("echo", ctx)
    return {"value": input}


async def _lookup(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    _effect("lookup", ctx)
    return {
        "refundable": True,
        "contacts": ["a@example.com", "b@example.com"],
        "order": input.get("order_id"),
    }


async def _charge(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    _effect("charge", ctx, amount=input.get("amount"))
    return {"charged": input.get("amount")}


async def _refund(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    _effect("refund", ctx, amount=input.get("amount"))
    return {"refunded": input.get("amount")}


async def _refund_seen(input: dict[str, Any], ctx: Any) -> dict[str, Any] | None:
    done = [e for e in effects_log() if e["skill"] == "refund" and e["key"] == ctx.idempotency_key]
    return {"refunded": done[0]["amount"]} if done else None


async def _flaky(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    _effect("flaky", ctx, attempt=ctx.attempt)
    if ctx.attempt < int(input.get("fail_times", 2)) + 1:
        raise FakeSkillError("transient", f"attempt {ctx.attempt} failed")
    return {"ok": True, "attempt": ctx.attempt}


async def _broken(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    _effect("broken", ctx)
    raise FakeSkillError("failed", "the order does not exist")


async def _tooluser(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    _effect("tooluser", ctx)
    result = await ctx.call_tool(input["tool"], input.get("args", {}))
    return {"tool": result}


def _skill(name: str, version: str, fn: Fn, effects: Effects | None = None, **options: Any) -> FakeSkill:
    reconcile = options.pop("reconcile_fn", None)
    contract = Contract(name, version, effects or Effects(), **options)
    return FakeSkill(Ref(name, version, f"sha256:{name}-{version}"), contract, fn, reconcile)


def default_skills() -> list[FakeSkill]:
    write = Effects("write", idempotent=True)
    once = Effects("external", idempotent=False, at_most_once=True)
    return [
        _skill("echo", "1.0.0", _echo),
        _skill("echo", "2.0.0", _echo),
        _skill("lookup", "1.0.0", _lookup, Effects("read")),
        _skill("charge", "1.0.0", _charge, write),
        _skill("refund", "1.0.0", _refund, once),
        _skill(
            "refund-r",
            "1.0.0",
            _refund,
            Effects("external", False, True, "scripts.refund:seen"),
            reconcile_fn=_refund_seen,
        ),
        _skill("flaky", "1.0.0", _flaky),
        _skill("backoff", "1.0.0", _flaky, retry=Retry(4, 1.0, 1.5, ("transient",))),
        _skill("broken", "1.0.0", _broken),
        _skill(
            "tooluser",
            "1.0.0",
            _tooluser,
            tools=(Rule("lookup_order"), Rule("issue_refund", "when", "args.amount > 100")),
        ),
    ]


class FakeCatalog:
    """Resolves a name to the version it serves (`promote` flips it), loads an exact version."""

    def __init__(self, skills: list[FakeSkill] | None = None) -> None:
        self.skills = {(s.ref.name, s.ref.version): s for s in skills or default_skills()}
        self.serving: dict[str, str] = {}
        for name, version in sorted(self.skills):
            self.serving.setdefault(name, version)
        self.loads: list[str] = []

    def promote(self, name: str, version: str) -> None:
        self.serving[name] = version

    async def resolve(
        self, name: str, constraint: str = "*", *, run_id: str | None = None, lock: Any = None
    ) -> Ref:
        if name not in self.serving:
            raise LookupError(f"no skill named {name} is published")
        return self.skills[(name, self.serving[name])].ref

    async def load(self, ref: Any) -> FakeSkill:
        self.loads.append(f"{ref.name}@{ref.version}")
        return self.skills[(ref.name, ref.version)]
