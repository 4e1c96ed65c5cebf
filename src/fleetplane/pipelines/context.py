"""What a worker's turn on one run holds: the shared dependencies (`Deps`) and the run's own handles
(`RunContext`): its pinned plan and lock, journal, reasoning trace, approvals, lease fence and catalog.

Everything a step needs is reached from here, so steps and gates take one argument, not ten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fleetplane.pipelines.approvals import Approvals
from fleetplane.pipelines.audit import AuditSink
from fleetplane.pipelines.gateway import GatewayClient
from fleetplane.pipelines.journal import Entry, Journal
from fleetplane.pipelines.mcp import McpTools
from fleetplane.pipelines.plan import Plan
from fleetplane.pipelines.reasoning import Reasoning
from fleetplane.pipelines.runs import Fence, RunRecord
from fleetplane.pipelines.sinks import sink_root
from fleetplane.pipelines.skillapi import CatalogFactory, CatalogLike
from fleetplane.state.clock import Clock, SystemClock
from fleetplane.store.db import Store
from fleetplane.telemetry.agent import spans as default_spans
from fleetplane.telemetry.spans import GenAISpans


@dataclass
class Deps:
    store: Store
    catalogs: CatalogFactory
    clock: Clock = field(default_factory=SystemClock)
    spans: GenAISpans | None = None  # None: the process's configured telemetry
    gateway: GatewayClient | None = None
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30.0))
    sink_root: Path = field(default_factory=sink_root)
    lease_ttl: float = 60.0

    @property
    def telemetry(self) -> GenAISpans:
        return self.spans or default_spans()


@dataclass
class RunContext:
    deps: Deps
    run: RunRecord
    plan: Plan
    fence: Fence
    journal: Journal
    reasoning: Reasoning
    approvals: Approvals
    audit: AuditSink
    catalog: CatalogLike
    entries: dict[str, Entry]
    mcp: McpTools
    traceparent: str | None = None
    executed: list[str] = field(default_factory=list)  # step keys run (not replayed) in this turn
    replayed: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.run.id

    def now(self) -> float:
        return self.deps.clock.now()

    async def note(self, key: str, kind: str, data: dict[str, Any], step_key: str | None = None) -> None:
        """A reasoning record (once per key, so a resume passing the same point adds nothing)."""
        await self.reasoning.record(key, kind, data, now=self.now(), step_key=step_key)
