"""`Model`: a model group clients ask for by name, served by an ordered fallback chain of deployments."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fleetplane.manifests.document import Manifest, kind
from fleetplane.manifests.fields import Duration, FieldError, Name, Price, Strict
from fleetplane.manifests.limits import QuotaLimits


class Deployment(Strict):
    """One place the group is served: a provider and the model name it knows."""

    provider: Name
    model: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    # Deployments with the same step share traffic by weight; steps are tried in ascending order.
    # Without steps, each deployment is its own step, in the order listed.
    step: int | None = Field(default=None, ge=0)
    price: Price | None = None
    timeout: Duration | None = None  # per attempt; the request's deadline still bounds it


class CacheSpec(Strict):
    # off: never; first: answer from the cache before any deployment; last-resort: only when every
    # deployment of the chain failed.
    mode: Literal["off", "first", "last-resort"] = "off"
    ttl: Duration = 300.0


class ModelSpec(Strict):
    type: Literal["chat", "embeddings"] = "chat"
    family: str = Field(min_length=1)  # e.g. gpt, claude, llama: judges must come from another family
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(default=4096, gt=0)
    price: Price | None = None
    aliases: list[str] = Field(default_factory=list)
    deployments: list[Deployment] = Field(min_length=1)
    timeout: Duration = 600.0  # one deadline for the whole request, fallbacks and waits included
    cooldown: Duration = 5.0  # how long a failing deployment rests when the upstream gives no retry-after
    cache: CacheSpec = Field(default_factory=CacheSpec)
    quota: QuotaLimits | None = None  # shared by every request to this model group

    @model_validator(mode="after")
    def _steps_all_or_none(self) -> ModelSpec:
        given = [d.step is not None for d in self.deployments]
        if any(given) and not all(given):
            first = given.index(False)
            raise FieldError(
                "missing, but other deployments set 'step'; set it on every deployment or on none",
                at=("deployments", first, "step"),
            )
        return self

    def chain(self) -> list[list[Deployment]]:
        """The fallback chain: groups of deployments, tried group by group."""
        if self.deployments[0].step is None:
            return [[d] for d in self.deployments]
        steps: dict[int, list[Deployment]] = {}
        for d in self.deployments:
            steps.setdefault(d.step or 0, []).append(d)
        return [steps[s] for s in sorted(steps)]


@kind
class Model(Manifest):
    KIND = "Model"
    kind: Literal["Model"]
    spec: ModelSpec
