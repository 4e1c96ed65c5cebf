"""`VirtualKey`: a credential clients present to the gateway, and the tenant path it stands for."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from fleetplane.manifests.document import Manifest, kind
from fleetplane.manifests.fields import Duration, FieldError, Name, SecretRef, Strict
from fleetplane.manifests.limits import QuotaLimits


class QuotaWait(Strict):
    max: Duration = Field(gt=0)
    priority: Literal["interactive", "batch"] = "interactive"


class VirtualKeySpec(Strict):
    team: Name
    user: Name | None = None
    customer: Name | None = None
    agent: Name | None = None
    # Model groups (or aliases) this key may call; shell-style patterns allowed; ["*"] = all.
    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    # Where the key's secret comes from (GitOps). Without it, `fleetplane apply` mints a secret and shows
    # it once; `fleetplane keys rotate` mints another.
    secret_ref: SecretRef | None = None
    expires_at: datetime | None = None
    quota: QuotaLimits | None = None  # this key's own budget
    # Instead of a 429 at once, wait up to `max` for quota to free up; interactive waits go first.
    wait: QuotaWait | None = None

    @model_validator(mode="after")
    def _user_or_customer(self) -> VirtualKeySpec:
        if self.user is not None and self.customer is not None:
            raise FieldError("a key stands for a user or a customer, not both", at=("customer",))
        return self


@kind
class VirtualKey(Manifest):
    KIND = "VirtualKey"
    kind: Literal["VirtualKey"]
    spec: VirtualKeySpec
