"""One request's state as it moves through the policy chain: who asked, for what, and what happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fleetplane.gateway.config import DeploymentRuntime, ModelGroup
from fleetplane.gateway.tenant import Tenant
from fleetplane.telemetry.cost import TokenUsage

Operation = Literal["chat", "messages", "embeddings"]
ClientApi = Literal["openai", "anthropic"]


@dataclass
class Reply:
    """A complete, non-streamed answer ready for the client (also what the cache stores)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


@dataclass
class Attempt:
    """One try of one deployment within a request."""

    deployment: DeploymentRuntime
    number: int
    started: float
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None


@dataclass
class RequestContext:
    request_id: str
    operation: Operation
    client_api: ClientApi
    body: dict[str, Any]
    raw: bytes
    stream: bool
    tenant: Tenant
    group: ModelGroup
    requested_model: str
    started: float  # monotonic
    started_wall: float
    deadline: float  # monotonic
    headers: dict[str, str]
    include_usage: bool = False  # the client asked for a usage chunk on its stream
    attempts: list[Attempt] = field(default_factory=list)
    served_by: DeploymentRuntime | None = None
    # The deployment holding the request right now (sent, no answer yet): charged if the client leaves.
    pending: DeploymentRuntime | None = None
    stream_error: str | None = None  # why a stream that started did not finish
    # What the answer said about itself (id, model, finish reasons), for telemetry.
    response_meta: dict[str, Any] = field(default_factory=dict)
    cache_status: str | None = None  # hit | miss | bypass; None when the model has no cache
    usage: TokenUsage | None = None
    usage_source: str = "none"
    ttft: float | None = None
    client_disconnected: bool = False
    dropped_params: list[str] = field(default_factory=list)
    capture_stream: bool = False  # a policy (the cache) wants the whole stream once it completes
    input_estimate: int | None = None  # input tokens as counted offline, once, when a policy needs them
    # A stream may send this many output tokens before the policies must hear of its progress (None: never).
    progress_mark: int | None = None
    limit_headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* of the tightest quota
    quota_reservations: dict[int, Any] = field(default_factory=dict)  # attempt number -> its L1 reservation
    breaker_probes: dict[int, list[Any]] = field(default_factory=dict)  # attempt number -> half-open probes

    @property
    def fallback(self) -> bool:
        """Whether the answer came from a later step of the chain than the first (a failure or a
        cooldown of the primary deployments moved it there)."""
        return self.served_by is not None and self.served_by not in self.group.chain[0]

    def remaining(self, now: float) -> float:
        return self.deadline - now
