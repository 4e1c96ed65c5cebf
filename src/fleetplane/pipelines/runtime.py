"""How the top floor (CLI, server) sets the wing up: dependencies from the environment, and which plan a
pipeline name means — from a directory of manifests when one is given, else the applied state.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.gateway import GatewayClient
from fleetplane.pipelines.plan import Plan
from fleetplane.pipelines.skillapi import CatalogFactory, default_catalogs
from fleetplane.pipelines.sources import PipelineNotFound, applied_plan, load_plans
from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.store.db import Store

LEASE_ENV = "FLEETPLANE_PIPELINE_LEASE"  # seconds a worker's lease on a run lasts without renewal


def make_deps(store: Store, *, catalogs: CatalogFactory | None = None, clock: Clock = SYSTEM_CLOCK) -> Deps:
    """Deps for this process: the installed skills catalog, the gateway named by FLEETPLANE_GATEWAY_URL."""
    home = os.environ.get("FLEETPLANE_HOME")
    return Deps(
        store=store,
        catalogs=catalogs or default_catalogs(store, home),
        clock=clock,
        gateway=GatewayClient.from_env(),
        lease_ttl=float(os.environ.get(LEASE_ENV, "60")),
    )


async def find_plan(store: Store, name: str, directory: str | Path | None = None) -> Plan:
    """The compiled plan of pipeline `name`; `PipelineNotFound` or `ManifestErrors` otherwise."""
    if directory is None:
        return await applied_plan(store, name)
    plans = load_plans(directory)
    if name not in plans:
        raise PipelineNotFound(name, list(plans))
    return plans[name]
