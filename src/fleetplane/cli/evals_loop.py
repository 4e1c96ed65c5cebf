"""The continuous eval loop `fleetplane up` runs beside the gateway: every EvalSuite with a `schedule` is
run against this very server whenever it is due (`fleetplane.cli.evals.serve_schedules`), so each suite's
scores become a time series in `fleetplane eval history`.

The runs call the gateway with a virtual key of their own (`fleetplane-evals`, agent `fleetplane-evals`,
in the fleet's first team, a fresh secret each start), so their traffic is authenticated, charged and
traced apart from users' and from the online judges' (`fleetplane-judge`). Ctrl-C stops the loop with
the server; a run cut short stays `running` in the store with what it scored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from fleetplane.cli.evals import serve_schedules
from fleetplane.evals.online.service import mint_own_key
from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.evalsuite import EvalSuite
from fleetplane.manifests.kinds import Team
from fleetplane.store.db import Store

log = logging.getLogger(__name__)

EVALS_KEY_NAME = "fleetplane-evals"


def scheduled_suites(desired: DesiredState) -> list[EvalSuite]:
    return [s for s in desired.of_kind(EvalSuite) if s.spec.schedule is not None]


async def mint_evals_key(store: Store, teams: list[tuple[str, str]], now: float) -> str | None:
    """A fresh secret for the scheduled runs' key; the previous start's stops working. `teams`:
    (team, organization) pairs; None when the fleet has no team to charge."""
    return await mint_own_key(store, EVALS_KEY_NAME, teams, now)


@dataclass
class ScheduleLoop:
    """The fleet's scheduled suites and their key, minted by `prepare_schedules` before the gateway loads
    its keys; `start()` runs the loop once the server listens, `stop()` ends it (a run in flight is
    cancelled: the server it calls is gone)."""

    store: Store
    desired: DesiredState
    suites: list[str]
    key: str | None
    event: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self, server_url: str, *, poll: float = 60.0) -> None:
        async def serve() -> None:
            try:
                await serve_schedules(
                    self.store, self.desired.directory, server_url, self.key, self.event, poll=poll
                )
            except Exception:  # the loop must never take the server down with it
                log.exception("scheduled eval runs stopped")

        self.task = asyncio.create_task(serve(), name="fleetplane-eval-schedules")

    async def stop(self) -> None:
        self.event.set()
        if self.task is None:
            return
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def prepare_schedules(store: Store, desired: DesiredState, now: float) -> ScheduleLoop | None:
    """When the fleet has scheduled suites, mint their key — before the server starts, so the gateway
    knows it from its first request — and return the loop to start; None otherwise."""
    suites = scheduled_suites(desired)
    if not suites:
        return None
    teams = [(t.name, t.spec.organization) for t in desired.of_kind(Team)]
    key = await mint_evals_key(store, teams, now)
    return ScheduleLoop(store, desired, [s.name for s in suites], key)
