"""The gateway's view of the applied manifests: providers, model groups and their fallback chains.

Built once per config generation and swapped atomically, so a request reads one consistent snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from fleetplane.gateway.breaker.rules import BreakerRule, breaker_rules
from fleetplane.gateway.quota.rules import QuotaRule, WaitSetting, rules_from_manifests
from fleetplane.manifests.fields import Price
from fleetplane.manifests.kinds import Manifest, Model, Provider, VirtualKey
from fleetplane.manifests.secrets import SecretUnavailable, read_secret
from fleetplane.telemetry.cost import Rates

log = logging.getLogger("fleetplane.gateway")

Api = Literal["openai", "anthropic"]


@dataclass(frozen=True)
class ProviderRuntime:
    name: str
    api: Api
    base_url: str
    auth_header: str
    api_key: str | None
    # Why this provider cannot be called (e.g. its key's variable is unset); attempts fail over.
    unusable: str | None
    headers: Mapping[str, str]
    query: Mapping[str, str]
    connect_timeout: float
    read_timeout: float
    max_connections: int
    price_provider: str | None


@dataclass(frozen=True)
class DeploymentRuntime:
    provider: ProviderRuntime
    model: str
    weight: float
    rates: Rates | None
    timeout: float | None

    @property
    def id(self) -> str:
        """One upstream resource; groups sharing it share its cooldown."""
        return f"{self.provider.name}/{self.model}"


@dataclass(frozen=True)
class ModelGroup:
    name: str
    type: Literal["chat", "embeddings"]
    family: str
    context_window: int
    max_output_tokens: int
    chain: tuple[tuple[DeploymentRuntime, ...], ...]
    timeout: float
    cooldown: float
    cache_mode: Literal["off", "first", "last-resort"]
    cache_ttl: float
    aliases: tuple[str, ...] = ()

    def deployments(self) -> list[DeploymentRuntime]:
        return [d for step in self.chain for d in step]


@dataclass
class GatewayConfig:
    generation: int = 0
    groups: dict[str, ModelGroup] = field(default_factory=dict)
    quota_rules: list[QuotaRule] = field(default_factory=list)
    breaker_rules: list[BreakerRule] = field(default_factory=list)
    key_waits: dict[str, WaitSetting] = field(default_factory=dict)  # virtual key name -> how it may wait
    _by_name: dict[str, ModelGroup] = field(default_factory=dict)

    def resolve(self, name: str) -> ModelGroup | None:
        return self._by_name.get(name)

    @classmethod
    def from_manifests(
        cls, manifests: Iterable[Manifest], *, sim_urls: Mapping[str, str] | None = None, generation: int = 0
    ) -> GatewayConfig:
        sim_urls = sim_urls or {}
        docs = list(manifests)
        providers: dict[str, ProviderRuntime] = {}
        for doc in docs:
            if isinstance(doc, Provider):
                providers[doc.name] = _provider(doc, sim_urls.get(doc.name))
        config = cls(generation=generation)
        for doc in docs:
            if isinstance(doc, Model):
                group = _group(doc, providers)
                if group is None:
                    continue
                config.groups[group.name] = group
                config._by_name[group.name] = group
                for alias in group.aliases:
                    config._by_name.setdefault(alias, group)
            elif isinstance(doc, VirtualKey) and doc.spec.wait is not None:
                config.key_waits[doc.name] = WaitSetting(doc.spec.wait.max, doc.spec.wait.priority)
        config.quota_rules = rules_from_manifests(docs)
        config.breaker_rules = breaker_rules(docs)
        return config


def _default_price_provider(spec_type: str, base_url: str) -> str | None:
    host = urlparse(base_url).hostname or ""
    if spec_type == "anthropic":
        return "anthropic"
    if host == "api.openai.com":
        return "openai"
    if host.endswith(".openai.azure.com"):
        return "azure"
    return None


def _provider(doc: Provider, sim_url: str | None) -> ProviderRuntime:
    spec = doc.spec
    unusable: str | None = None
    if spec.type == "sim":
        base_url = sim_url or ""
        if not base_url:
            unusable = f"simulator for provider {doc.name} is not running"
        base_url = base_url.rstrip("/") + "/v1" if base_url else ""
    else:
        base_url = (spec.base_url or "").rstrip("/")
    api_key: str | None = None
    if spec.api_key is not None:
        try:
            # The loader made a relative key file absolute; the working directory is the last resort.
            api_key = read_secret(spec.api_key, base_dir=Path.cwd())
        except SecretUnavailable as exc:
            unusable = f"provider {doc.name}: {exc}"
    default_header = "x-api-key" if spec.api == "anthropic" else "authorization"
    return ProviderRuntime(
        name=doc.name,
        api=spec.api,
        base_url=base_url,
        auth_header=spec.auth_header or default_header,
        api_key=api_key,
        unusable=unusable,
        headers=dict(spec.headers),
        query=dict(spec.query_params),
        connect_timeout=spec.timeouts.connect,
        read_timeout=spec.timeouts.read,
        max_connections=spec.max_connections,
        price_provider=spec.price_provider or _default_price_provider(spec.type, base_url),
    )


def _rates(price: Price | None) -> Rates | None:
    if price is None:
        return None
    return Rates.of(price.input, price.output, price.cache_read, price.cache_write)


def _group(doc: Model, providers: Mapping[str, ProviderRuntime]) -> ModelGroup | None:
    spec = doc.spec
    chain: list[tuple[DeploymentRuntime, ...]] = []
    for step in spec.chain():
        deployments = []
        for d in step:
            provider = providers.get(d.provider)
            if provider is None:
                log.error("model %s: deployment names unknown provider %s; skipped", doc.name, d.provider)
                continue
            deployments.append(
                DeploymentRuntime(
                    provider=provider,
                    model=d.model,
                    weight=d.weight,
                    rates=_rates(d.price) or _rates(spec.price),
                    timeout=d.timeout,
                )
            )
        if deployments:
            chain.append(tuple(deployments))
    if not chain:
        log.error("model %s has no usable deployment; not served", doc.name)
        return None
    return ModelGroup(
        name=doc.name,
        type=spec.type,
        family=spec.family,
        context_window=spec.context_window,
        max_output_tokens=spec.max_output_tokens,
        chain=tuple(chain),
        timeout=spec.timeout,
        cooldown=spec.cooldown,
        cache_mode=spec.cache.mode,
        cache_ttl=spec.cache.ttl,
        aliases=tuple(spec.aliases),
    )
