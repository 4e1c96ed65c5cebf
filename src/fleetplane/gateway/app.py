"""Assembling the gateway: the policy chain in its one place, the router, the background tasks, the routes.

The chain's order is the spine of DESIGN.md: L2 agent breakers, then the cache, then per attempt L1
admission and the L3 deployment cooldowns (inside the router). Quota and breaker layers are policies
added to `policies()`; nothing else changes when they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from starlette.routing import Route

from fleetplane.gateway.auth import KeyIndex
from fleetplane.gateway.breaker.policy import BreakerPolicy
from fleetplane.gateway.cache import ResponseCache
from fleetplane.gateway.config import GatewayConfig
from fleetplane.gateway.cooldown import Cooldowns
from fleetplane.gateway.ledger import UsageLedger
from fleetplane.gateway.parse import DEFAULT_MAX_BODY
from fleetplane.gateway.policy import Policy, PolicyChain
from fleetplane.gateway.quota.policy import QuotaPolicy
from fleetplane.gateway.router import Router
from fleetplane.gateway.service import Gateway
from fleetplane.gateway.tracing import TracingPolicy
from fleetplane.gateway.upstream.pool import UpstreamPool
from fleetplane.manifests.kinds import KINDS, Manifest
from fleetplane.state.breaker import open_breaker_store
from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.state.kv import KV, MemoryKV, open_kv
from fleetplane.state.quota import open_quota_store
from fleetplane.store.applied import AppliedRepository
from fleetplane.store.db import Store
from fleetplane.store.keys import KeyRepository
from fleetplane.store.url import home
from fleetplane.store.usage import UsageRepository
from fleetplane.telemetry.setup import Telemetry

log = logging.getLogger("fleetplane.gateway")


@dataclass
class GatewaySettings:
    redis_url: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    # Where each `sim` provider's simulator listens (filled in by whoever started it).
    sim_urls: Mapping[str, str] = field(default_factory=dict)
    config_poll: float = 2.0
    # How many gateway replicas share the quota store: in the `open` fail mode each admits limit ÷ replicas.
    replicas: int = 1
    quota_lease: float = 120.0
    quota_sweep: float = 2.0
    # In process, cached answers and small marks (cooldowns, breaker counters) live in separate KVs, so a
    # churning cache can never evict a cooldown; each is bounded by entries and by bytes.
    cache_max_entries: int = 100_000
    cache_max_bytes: int = 256 * 2**20
    marks_max_entries: int = 500_000
    marks_max_bytes: int = 128 * 2**20
    # How long stopping may spend writing queued usage records before it spills them to `spill_dir`
    # (default: `$FLEETPLANE_HOME/spill/`), to be replayed at the next start.
    ledger_shutdown_timeout: float = 10.0
    spill_dir: Path | None = None


async def load_applied(store: Store, *, generation: int | None = None) -> tuple[int, list[Manifest]]:
    """The applied desired state as manifest objects; a document that no longer validates is skipped."""
    repo = AppliedRepository(store)
    if generation is None:
        generation = await repo.generation()
    manifests: list[Manifest] = []
    for (kind, name), doc in sorted((await repo.all()).items()):
        cls = KINDS.get(kind)
        if cls is None:
            continue
        try:
            manifests.append(cls.model_validate(doc.document))
        except Exception as exc:
            log.error("applied %s/%s no longer validates and is ignored: %s", kind, name, exc)
    return generation, manifests


class GatewayRuntime:
    def __init__(
        self,
        store: Store,
        settings: GatewaySettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.tracing = TracingPolicy(telemetry) if telemetry is not None else None
        self.settings = settings
        self.clock = clock
        # `kv` holds cooldowns and breaker marks, `cache_kv` cached answers: two LRUs in process, so cache
        # churn cannot evict a cooldown; one Redis client when shared (Redis evicts by its own policy).
        self.kv: KV = open_kv(
            settings.redis_url,
            clock=clock,
            max_entries=settings.marks_max_entries,
            max_bytes=settings.marks_max_bytes,
        )
        self.cache_kv: KV = self.kv
        if not settings.redis_url:
            self.cache_kv = MemoryKV(
                clock=clock, max_entries=settings.cache_max_entries, max_bytes=settings.cache_max_bytes
            )
        self.pool = UpstreamPool()
        self.cooldowns = Cooldowns(self.kv)
        self.cache = ResponseCache(self.cache_kv)
        self.quota = QuotaPolicy(
            open_quota_store(settings.redis_url, clock=None if clock is SYSTEM_CLOCK else clock),
            rules=lambda: self.config.quota_rules,
            waits=lambda key: self.config.key_waits.get(key),
            clock=clock,
            replicas=settings.replicas,
            lease=settings.quota_lease,
        )
        self.breakers = BreakerPolicy(
            open_breaker_store(settings.redis_url, clock=None if clock is SYSTEM_CLOCK else clock),
            self.kv,
            self.cooldowns,
            rules=lambda: self.config.breaker_rules,
        )
        self.chain = PolicyChain(self.policies())
        self.router = Router(chain=self.chain, cooldowns=self.cooldowns, pool=self.pool, clock=clock)
        self.keys = KeyIndex(KeyRepository(store), clock=clock)
        self.ledger = UsageLedger(
            UsageRepository(store), clock=clock, spill_dir=settings.spill_dir or home() / "spill"
        )
        self.config = GatewayConfig()
        self.gateway = Gateway(
            config=lambda: self.config,
            keys=self.keys,
            chain=self.chain,
            router=self.router,
            ledger=self.ledger,
            clock=clock,
            max_body=settings.max_body,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def policies(self) -> list[Policy]:
        # on_request: L2 breakers refuse first, then the cache may answer (no quota is spent on a hit);
        # before_attempt: deployment breakers, then L1 admission on every quota scope of the attempt;
        # on_complete/on_error run in reverse, so tracing — first here — sees every decision made.
        chain: list[Policy] = [self.breakers, self.cache, self.quota]
        return [self.tracing, *chain] if self.tracing is not None else chain

    async def reload(self) -> bool:
        """Rebuild the config if the applied generation moved; True when it did."""
        # One cheap query first: loading and validating every document each poll costs ~100 ms at 3,000 keys.
        generation = await AppliedRepository(self.store).generation()
        if generation == self.config.generation and self.config.groups:
            return False
        generation, manifests = await load_applied(self.store, generation=generation)
        self.config = GatewayConfig.from_manifests(
            manifests, sim_urls=self.settings.sim_urls, generation=generation
        )
        log.info("gateway config generation %d: %d model groups", generation, len(self.config.groups))
        return True

    async def _sweep_quota(self) -> None:
        while True:
            await self.clock.sleep(self.settings.quota_sweep)
            try:
                await self.quota.expire()
            except Exception as exc:
                log.warning("quota lease sweep failed: %s", exc)

    async def _watch_config(self) -> None:
        while True:
            await self.clock.sleep(self.settings.config_poll)
            try:
                await self.reload()
            except Exception as exc:
                log.warning("could not reload config: %s", exc)

    async def start(self) -> None:
        await self.keys.refresh()
        await self.reload()
        try:
            replayed = await self.ledger.replay()
        except Exception as exc:  # the ledger's task retries once the store takes writes
            log.warning("usage ledger: spilled records not replayed yet: %s", exc)
        else:
            if replayed:
                log.info("usage ledger: %d spilled records replayed", replayed)
        self._tasks = [
            asyncio.create_task(self.keys.run(), name="fleetplane-keys"),
            asyncio.create_task(self.ledger.run(), name="fleetplane-ledger"),
            asyncio.create_task(self._watch_config(), name="fleetplane-config"),
            asyncio.create_task(self._sweep_quota(), name="fleetplane-quota-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.ledger.close(self.settings.ledger_shutdown_timeout)
        await self.pool.close()
        await self.quota.close()
        await self.breakers.store.close()
        await self.kv.close()
        if self.cache_kv is not self.kv:
            await self.cache_kv.close()

    def routes(self) -> list[Route]:
        g = self.gateway
        return [
            Route("/v1/chat/completions", g.chat_completions, methods=["POST"]),
            Route("/v1/messages", g.messages, methods=["POST"]),
            Route("/v1/embeddings", g.embeddings, methods=["POST"]),
            Route("/v1/models", g.models, methods=["GET"]),
        ]
