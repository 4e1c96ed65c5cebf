"""`Provider`: where models are served from and how to reach it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fleetplane.manifests.document import Manifest, kind
from fleetplane.manifests.fields import Duration, FieldError, SecretRef, Strict

ProviderType = Literal["openai-compatible", "anthropic", "sim"]


class Timeouts(Strict):
    connect: Duration = 5.0
    # The longest silence between two bytes of a response; a hung stream is cut after this.
    read: Duration = 120.0


class SimSettings(Strict):
    """A simulator the server starts as a child process (type `sim`)."""

    config: str | None = None  # a simulator config file, relative to the manifest's directory
    seed: int = 0
    # The simulator speaks both APIs; this is the one the gateway uses to reach it. Providers with the
    # same config, seed and port share one simulator process.
    api: Literal["openai", "anthropic"] = "openai"
    port: int = Field(default=0, ge=0, le=65535)  # 0 = any free port


class ProviderSpec(Strict):
    type: ProviderType
    base_url: str | None = Field(default=None, alias="baseURL")
    api_key: SecretRef | None = None
    # The header that carries the key; by default `authorization: Bearer` (openai-compatible),
    # `x-api-key` (anthropic). Azure OpenAI uses `api-key`.
    auth_header: Literal["authorization", "api-key", "x-api-key"] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    query_params: dict[str, str] = Field(default_factory=dict)  # e.g. Azure's api-version
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_connections: int = Field(default=256, ge=1)
    # The genai-prices provider id used to price this provider's models (openai, anthropic, azure, ...).
    price_provider: str | None = None
    sim: SimSettings | None = None

    @model_validator(mode="after")
    def _complete(self) -> ProviderSpec:
        if self.type == "sim":
            if self.base_url is not None:
                raise FieldError(
                    "not allowed for a provider of type 'sim' (fleetplane starts the simulator itself)",
                    at=("baseURL",),
                )
        elif not self.base_url:
            raise FieldError(f"required for a provider of type '{self.type}'", at=("baseURL",))
        elif not self.base_url.startswith(("http://", "https://")):
            raise FieldError(expected="a URL starting with http:// or https://", at=("baseURL",))
        if self.sim is not None and self.type != "sim":
            raise FieldError("allowed only for providers of type 'sim'", at=("sim",))
        return self

    @property
    def api(self) -> Literal["openai", "anthropic"]:
        """The wire protocol the gateway speaks to this provider."""
        if self.type == "sim":
            return self.sim.api if self.sim is not None else "openai"
        return "anthropic" if self.type == "anthropic" else "openai"


@kind
class Provider(Manifest):
    KIND = "Provider"
    kind: Literal["Provider"]
    spec: ProviderSpec
