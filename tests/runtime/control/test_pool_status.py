"""A rollout is complete only when nothing but the target revision's replicas remain: a replica of the
revision being left that is still stopping (out of the balancer, but running and listed) keeps the
status "progressing" until its stop has ended — what `rollout status` and the e2e's wait rely on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fleetplane.runtime.keys import AgentKeys
from fleetplane.runtime.reconciler import Reconciler
from fleetplane.runtime.replica import ExitStatus, ReplicaState
from fleetplane.runtime.specs import SpecSettings

pytestmark = pytest.mark.anyio

TWO = """\
run: {command: [python3, app.py]}
replicas: {min: 2, max: 2}
trust: trusted
isolation: process
env: {GREETING: hello}
"""


def reconciler(store, launcher, tmp_path: Path) -> Reconciler:
    settings = SpecSettings(log_dir=tmp_path / "logs", gateway_url="http://127.0.0.1:9", stop_grace=0.1)
    return Reconciler(store, launcher, settings, keys=AgentKeys(store), fleet_dir=tmp_path / "fleet")


def hold_stop(replica) -> asyncio.Event:
    """Make `replica.stop()` last until the returned event is set (a sandbox that takes its time)."""
    release = asyncio.Event()
    stop = replica.stop

    async def slow_stop(grace: float | None = None) -> None:
        await release.wait()
        await stop(grace)

    replica.stop = slow_stop
    return release


async def test_undo_is_not_complete_while_a_replica_of_the_broken_revision_is_still_stopping(
    store, launcher, fleet, tmp_path
) -> None:
    await fleet.apply(bot=TWO)
    r = reconciler(store, launcher, tmp_path)
    await r.sync()
    for replica in launcher.running("bot"):
        replica.set(ReplicaState.READY)
    await r.sync()
    pool = r.pools["bot"]
    assert pool.status() == "complete"
    good = {t.id for t in pool.replicas}
    await fleet.apply(bot=TWO.replace("hello", "bonjour"))
    await r.sync()
    (broken,) = [x for x in launcher.running("bot") if x.spec.replica_id not in good]
    broken.last_exit = ExitStatus("ProbeFailed", detail="startup probe failed: GET /missing: 404")
    broken.set(ReplicaState.BACKOFF)
    release = hold_stop(broken)
    await r.undo("bot")
    await r.sync()
    retiring = [t for t in pool.replicas if t.id == broken.spec.replica_id]
    assert len(retiring) == 1 and retiring[0].stopping  # out of the balancer, its stop not yet ended
    report = pool.report()
    assert (report["revision"], report["status"], report["ready"]) == (3, "progressing", 2)
    assert {x["id"] for x in report["replicas"]} == good | {broken.spec.replica_id}
    release.set()
    await r.settle()
    report = pool.report()
    assert (report["revision"], report["status"]) == (3, "complete")
    assert {x["id"] for x in report["replicas"]} == good
    assert broken.stopped
