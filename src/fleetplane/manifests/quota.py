"""`Quota`: token, request, concurrency and dollar limits on any level a request is attributed to."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleetplane.manifests.document import Manifest, kind
from fleetplane.manifests.fields import Strict
from fleetplane.manifests.limits import QuotaLimits, QuotaTarget, Schedule, TimeZone


class QuotaSpec(Strict):
    target: QuotaTarget
    limits: QuotaLimits
    schedule: Schedule | None = None  # limits by time of day and day of week
    # strict: reserve the request's max output tokens (or the model's) — a limit is never exceeded;
    # adaptive: reserve a learned percentile of past outputs, capped by the request's maximum.
    reservation: Literal["strict", "adaptive"] = "strict"
    adaptive_percentile: float = Field(default=0.95, ge=0.5, le=0.999)
    # When the shared store (Redis) cannot be reached: closed = refuse (503); open = admit against a
    # conservative local limit of limit ÷ replicas.
    fail_mode: Literal["closed", "open"] = "closed"
    # Calendar windows (dollars per day/month) turn over at midnight here; default: the organization's.
    time_zone: TimeZone | None = None


@kind
class Quota(Manifest):
    KIND = "Quota"
    kind: Literal["Quota"]
    spec: QuotaSpec
