"""The skills wing's public API as this wing uses it: structural types for what the engine reads, and the
one place that imports `fleetplane.skills` (its public names only, never its internals).

The engine is written against these protocols, so a catalog is anything with `resolve`/`load` (the real
`SkillCatalog`, or a test's fake). `SkillRef` and `SkillContext` values are made by the skills wing's own
classes when it is installed, so a real catalog receives its own types back.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetplane.store.db import Store


class SkillRefLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def digest(self) -> str: ...


class EffectsLike(Protocol):
    @property
    def kind(self) -> str: ...  # pure | read | write | external
    @property
    def idempotent(self) -> bool: ...
    @property
    def at_most_once(self) -> bool: ...
    @property
    def reconcile(self) -> str | None: ...


class RetryPolicyLike(Protocol):
    @property
    def max_attempts(self) -> int: ...
    @property
    def base(self) -> float: ...
    @property
    def cap(self) -> float: ...
    @property
    def retry_on(self) -> tuple[str, ...]: ...


class ToolRuleLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def approval(self) -> str: ...  # never | always | when
    @property
    def when(self) -> str | None: ...


class ContractLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def effects(self) -> EffectsLike: ...
    @property
    def tools(self) -> tuple[ToolRuleLike, ...]: ...
    @property
    def retry(self) -> RetryPolicyLike: ...
    @property
    def timeout(self) -> float: ...
    @property
    def guardrails(self) -> tuple[dict[str, Any], ...]: ...
    @property
    def model(self) -> str | None: ...


class LoadedSkillLike(Protocol):
    @property
    def ref(self) -> SkillRefLike: ...
    @property
    def contract(self) -> ContractLike: ...
    async def invoke(self, input: dict[str, Any], ctx: Any) -> dict[str, Any]: ...
    async def reconcile(self, input: dict[str, Any], ctx: Any) -> dict[str, Any] | None: ...


class CatalogLike(Protocol):
    async def resolve(
        self, name: str, constraint: str = "*", *, run_id: str | None = None, lock: Any = None
    ) -> SkillRefLike: ...
    async def load(self, ref: Any) -> LoadedSkillLike: ...


# A catalog for a pipeline's policy: `require_signed=True` gives one that refuses unsigned skills.
CatalogFactory = Callable[[bool], CatalogLike]

RETRYABLE = frozenset({"transient", "timeout"})


def error_kind(error: BaseException) -> str:
    """A `SkillError`'s kind; any other exception from a skill is a plain failure."""
    kind = getattr(error, "kind", None)
    return kind if isinstance(kind, str) else "failed"


@dataclass(frozen=True)
class _Ref:
    name: str
    version: str
    digest: str


@dataclass
class _Context:
    run_id: str
    step_id: str
    attempt: int
    idempotency_key: str
    traceparent: str | None = None
    gateway_url: str | None = None
    gateway_key: str | None = None
    call_tool: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
    log: Callable[[str], None] = field(default=print)


def _public(name: str) -> Any:
    """A public name of `fleetplane.skills`, or None while that wing does not export it."""
    try:
        module = importlib.import_module("fleetplane.skills")
    except ImportError:
        return None
    return getattr(module, name, None)


def make_ref(pinned: Mapping[str, str]) -> Any:
    """A `SkillRef` from a run's lock entry ({name, version, digest})."""
    cls = _public("SkillRef") or _Ref
    return cls(name=pinned["name"], version=pinned["version"], digest=pinned["digest"])


def make_context(**values: Any) -> Any:
    """A `SkillContext` for one invocation."""
    cls = _public("SkillContext") or _Context
    return cls(**values)


def default_catalogs(store: Store, home: str | None = None) -> CatalogFactory:
    """Catalogs of the installed skills wing, one per signing policy."""
    catalog_class = _public("SkillCatalog")
    if catalog_class is None:
        raise RuntimeError("the skills wing is not installed: fleetplane.skills exports no SkillCatalog")
    made: dict[bool, CatalogLike] = {}

    def catalog(require_signed: bool) -> CatalogLike:
        if require_signed not in made:
            made[require_signed] = catalog_class(store, home=home, require_signed=require_signed)
        return made[require_signed]

    return catalog
