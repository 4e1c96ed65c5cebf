"""What `fleetplane up` starts for a fleet before serving it: the simulator child processes its `sim`
providers ask for, and the key it prints to try (the fleet's quickstart key, rotated each start)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetplane.cli.common import now
from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.kinds import Provider, Team, VirtualKey
from fleetplane.sim.process import SimProcess
from fleetplane.store.db import Store
from fleetplane.store.keys import KeyRepository, NewKey, new_secret

QUICKSTART_LABEL = "fleetplane.dev/quickstart"
UP_KEY = "up-quickstart"


def bundled_fleet() -> Path | None:
    """The example fleet of a source checkout (`examples/fleet` beside `src/`)."""
    candidate = Path(__file__).resolve().parents[3] / "examples" / "fleet"
    return candidate if candidate.is_dir() else None


@dataclass
class Started:
    sims: list[SimProcess]
    sim_urls: dict[str, str]


def start_simulators(desired: DesiredState) -> Started:
    """One simulator process per distinct (config, seed, port); providers asking for the same one share it."""
    by_setup: dict[tuple[str | None, int, int], SimProcess] = {}
    urls: dict[str, str] = {}
    sims: list[SimProcess] = []
    for provider in desired.of_kind(Provider):
        if provider.spec.type != "sim":
            continue
        settings = provider.spec.sim
        config = None
        if settings is not None and settings.config:
            config = str((desired.base_dir(provider) / settings.config).resolve())
        seed = settings.seed if settings else 0
        port = settings.port if settings else 0
        setup = (config, seed, port)
        sim = by_setup.get(setup)
        if sim is None:
            sim = SimProcess(config=Path(config) if config else None, seed=seed, port=port)
            sim.start()
            by_setup[setup] = sim
            sims.append(sim)
        urls[provider.name] = sim.base_url
    return Started(sims, urls)


async def quickstart_key(store: Store, desired: DesiredState) -> tuple[str, str] | None:
    """A fresh secret for the fleet's quickstart key (the VirtualKey labelled fleetplane.dev/quickstart),
    or a key of `up`'s own for the first team; the previous one stops working."""
    keys = KeyRepository(store)
    secret = new_secret()
    for key in desired.of_kind(VirtualKey):
        if key.metadata.labels.get(QUICKSTART_LABEL) == "true" and await keys.get(key.name) is not None:
            await keys.set_secret(key.name, secret, now=now())
            return key.name, secret
    teams = sorted((t.name, t.spec.organization) for t in desired.of_kind(Team))
    if not teams:
        return None
    team, organization = teams[0]
    if await keys.get(UP_KEY) is not None:
        await keys.delete(UP_KEY)
    await keys.create(
        NewKey(name=UP_KEY, organization=organization, team=team, source="up"), secret=secret, now=now()
    )
    return UP_KEY, secret
