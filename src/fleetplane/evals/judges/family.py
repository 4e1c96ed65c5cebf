"""The judge-family rule: a judge must come from a different model family than the model it judges.

Judges recognise and favour their own family's generations (Panickssery, Bowman & Feng 2024), so a judge
whose family equals the target's is refused — when the suite is loaded and again when an item is scored
(the target of a run or a production span may differ from the suite's) — unless the caller overrides it
explicitly; an override is recorded with every score it produced.

Families come from Model manifests (`spec.family`); `ModelCatalog` maps every model group name and alias
to its family and price, read from a desired state or from the manifests applied in the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetplane.evals.scoring import ScorerError


class FamilyError(ScorerError):
    """A same-family judge without an override, or a model whose family is unknown."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="judge")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    input_price: float = 0.0  # US dollars per million tokens
    output_price: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1_000_000


@dataclass(frozen=True)
class ModelCatalog:
    """Model groups by name and alias."""

    models: Mapping[str, ModelInfo] = field(default_factory=dict)

    @classmethod
    def from_documents(cls, documents: Iterable[Mapping[str, Any]]) -> ModelCatalog:
        """From Model manifests as plain documents (`{kind, metadata: {name}, spec: {family, ...}}`)."""
        models: dict[str, ModelInfo] = {}
        for doc in documents:
            if doc.get("kind") != "Model":
                continue
            spec = doc.get("spec") or {}
            name = str((doc.get("metadata") or {}).get("name", ""))
            price = spec.get("price") or {}
            info = ModelInfo(
                name, str(spec.get("family", "")), float(price.get("input", 0)), float(price.get("output", 0))
            )
            for key in (name, *(spec.get("aliases") or [])):
                models[str(key)] = info
        return cls(models)

    @classmethod
    def from_manifests(cls, manifests: Iterable[Any]) -> ModelCatalog:
        """From loaded `Model` manifests (pydantic objects)."""
        return cls.from_documents(m.to_document() for m in manifests)

    @classmethod
    async def from_store(cls, store: Any) -> ModelCatalog:
        """From the Model manifests applied in the store (what the servers run)."""
        from fleetplane.store.applied import AppliedRepository

        applied = await AppliedRepository(store).all()
        return cls.from_documents(
            {"kind": doc.kind, **doc.document} if "kind" not in doc.document else doc.document
            for (kind, _), doc in applied.items()
            if kind == "Model"
        )

    def get(self, model: str | None) -> ModelInfo | None:
        return self.models.get(model) if model else None

    def family(self, model: str | None) -> str | None:
        info = self.get(model)
        return info.family if info is not None else None


@dataclass(frozen=True)
class FamilyCheck:
    judge: str
    judge_family: str | None
    target: str | None
    target_family: str | None
    overridden: bool  # same family, allowed explicitly

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"judge": self.judge, "judge_family": self.judge_family}
        if self.target is not None:
            out.update(target_model=self.target, target_family=self.target_family)
        if self.overridden:
            out["same_family_override"] = True
        return out


def check_family(
    judge: str, target: str | None, catalog: ModelCatalog, *, allow_same_family: bool = False
) -> FamilyCheck:
    """Refuse a judge of the target's family (unless allowed) and a judge whose family is unknown.

    A target whose family is unknown (an agent, or a model outside the catalog) passes: the rule is
    checked again per item, where the answering model is known."""
    judge_family = catalog.family(judge)
    if judge_family is None:
        raise FamilyError(
            f"judge model {judge!r} is not a Model in this fleet; its family is needed to check it "
            "against the target's"
        )
    target_family = catalog.family(target)
    same = target_family is not None and target_family == judge_family
    if same and not allow_same_family:
        raise FamilyError(
            f"judge {judge!r} is of family {judge_family!r}, the same as target {target!r}: judges favour "
            "their own family's answers; pick a judge of another family or set allowSameFamilyJudge: true"
        )
    return FamilyCheck(judge, judge_family, target, target_family, overridden=same)
