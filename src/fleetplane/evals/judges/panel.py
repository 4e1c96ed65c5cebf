"""What rubric and pairwise judges share: the judge models (one, or a panel pooled), where they call, the
family rule checked at construction (suite load) and again for every item, and how inputs read as text.

The client and catalog come from the scorer's parameters when given (tests, the online evaluator), else
from `configure_judges` (the server and CLI set it once), else from the environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from fleetplane.evals.judges.client import JudgeClient, JudgeReply
from fleetplane.evals.judges.family import FamilyCheck, ModelCatalog, check_family
from fleetplane.evals.scoring import Sample, ScorerError

T = TypeVar("T")

_configured: JudgeClient | None = None


def configure_judges(client: JudgeClient | None) -> None:
    """The client every judge scorer built without one uses (None: read the environment again)."""
    global _configured
    _configured = client


def default_client() -> JudgeClient:
    return _configured if _configured is not None else JudgeClient.from_env(ModelCatalog())


def _flag(params: Mapping[str, Any], *names: str) -> bool:
    return any(bool(params.get(n)) for n in names)


@dataclass
class JudgePanel:
    models: list[str]
    client: JudgeClient
    allow_same_family: bool
    checks: list[FamilyCheck]  # the checks at construction (against `target_model` when given)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> JudgePanel:
        raw = params.get("judges") or params.get("judge")
        models = [raw] if isinstance(raw, str) else list(raw or [])
        if not models or not all(isinstance(m, str) and m for m in models):
            raise ScorerError(
                "a judge scorer needs 'judge' (a model group) or 'judges' (a panel)", param="judge"
            )
        client = params.get("client") or default_client()
        if not isinstance(client, JudgeClient):
            raise ScorerError("'client' must be a JudgeClient", param="client")
        allow = _flag(params, "allow_same_family", "allowSameFamily", "allow_same_family_judge")
        target = params.get("target_model") or params.get("targetModel")
        # Refused here, at suite load, when the suite's target is a known model of the judge's family.
        checks = [check_family(m, target, client.catalog, allow_same_family=allow) for m in models]
        return cls(models, client, allow, checks)

    def check(self, sample: Sample) -> list[FamilyCheck]:
        """The rule again for this item's answering model (raises `FamilyError` when it is broken)."""
        return [
            check_family(m, sample.model, self.client.catalog, allow_same_family=self.allow_same_family)
            for m in self.models
        ]

    async def each(self, call: Callable[[str], Awaitable[T]]) -> list[T]:
        return list(await asyncio.gather(*(call(m) for m in self.models)))


def details(checks: Sequence[FamilyCheck], replies: Sequence[JudgeReply]) -> dict[str, Any]:
    out: dict[str, Any] = {"judges": [c.details() for c in checks]}
    if any(c.overridden for c in checks):
        out["same_family_override"] = True
    out["judge_tokens"] = sum(r.input_tokens + r.output_tokens for r in replies)
    return out


def as_text(value: Any) -> str:
    """A case input or answer as the text a judge reads: chat messages as `role: content` lines."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, Mapping) and "role" in m for m in value):
        return "\n".join(f"{m['role']}: {_content(m.get('content'))}" for m in value)
    return orjson.dumps(value, default=str).decode()


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text") or p.get("content") or "") for p in content if isinstance(p, Mapping)
        )
    return "" if content is None else str(content)
