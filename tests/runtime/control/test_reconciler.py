"""The reconciler's decisions against a fake launcher: scale, rolling updates (surge 1, unavailable 0),
a revision that never gets ready, undo, removal and replacement."""

# ruff: noqa: E501

from __future__ import annotations

from pathlib import Path

import pytest

from fleetplane.runtime.keys import AgentKeys, key_name
from fleetplane.runtime.reconciler import Reconciler
from fleetplane.runtime.replica import ExitStatus, ReplicaState
from fleetplane.runtime.revisions import RevisionError
from fleetplane.runtime.specs import SpecSettings
from fleetplane.state.clock import ManualClock
from fleetplane.store.keys import KeyRepository, hash_secret

pytestmark = pytest.mark.anyio

TWO = """\
run: {command: [python3, app.py]}
replicas: {min: 2, max: 2}
trust: trusted
isolation: process
env: {GREETING: hello}
"""
TWO_V2 = TWO.replace("hello", "bonjour")


def reconciler(store, launcher, tmp_path: Path, **kw) -> Reconciler:
    settings = SpecSettings(log_dir=tmp_path / "logs", gateway_url="http://127.0.0.1:9", stop_grace=0.1)
    return Reconciler(store, launcher, settings, keys=AgentKeys(store), fleet_dir=tmp_path / "fleet", **kw)


async def ready_all(launcher, agent: str = "bot") -> None:
    for replica in launcher.running(agent):
        if replica.state != ReplicaState.READY:
            replica.set(ReplicaState.READY)


async def test_starts_the_replicas_and_reports_complete(store, launcher, fleet, tmp_path) -> None:
    await fleet.apply(bot=TWO)
    r = reconciler(store, launcher, tmp_path)
    await r.sync()
    assert [x.spec.replica_id for x in launcher.running()] == [
        f"bot-{r.pools['bot'].revision.digest[:6]}-0",
        f"bot-{r.pools['bot'].revision.digest[:6]}-1",
    ]
    assert r.pools["bot"].status() == "progressing"
    await ready_all(launcher)
    await r.sync()
    report = r.pools["bot"].report()
    assert (report["status"], report["revision"], report["ready"], report["desired"]) == ("complete", 1, 2, 2)
    assert report["message"] == "revision 1: 2 replica(s) ready"
    spec = launcher.running()[0].spec
    assert spec.env["GREETING"] == "hello" and spec.env["FLEETPLANE_AGENT"] == "bot"
    assert spec.tier == "process" and spec.gateway_url == "http://127.0.0.1:9"
    # The agent's own key: issued through the store's key API, for this agent in its team.
    key = await KeyRepository(store).get(key_name("bot"))
    assert key is not None and (key.agent, key.team, key.organization, key.source) == (
        "bot",
        "support",
        "acme",
        "runtime",
    )
    assert spec.virtual_key is not None and hash_secret(spec.virtual_key) == key.key_hash
    await r.sync()  # nothing changed: nothing started or stopped
    assert len(launcher.started) == 2


async def test_rolling_update_surges_one_and_never_drops_below_ready(
    store, launcher, fleet, tmp_path
) -> None:
    await fleet.apply(bot=TWO)
    r = reconciler(store, launcher, tmp_path)
    await r.sync()
    await ready_all(launcher)
    await r.sync()
    await fleet.apply(bot=TWO_V2)
    pool = r.pools["bot"]
    seen_ready: list[int] = []
    for _ in range(6):
        await r.sync()
        await r.settle()
        seen_ready.append(len(pool.routable()))
        running = launcher.running()
        assert len(running) <= 3  # surge 1
        new = [x for x in running if x.spec.env["GREETING"] == "bonjour"]
        assert len([x for x in new if x.state != ReplicaState.READY]) <= 1
        await ready_all(launcher)
    assert min(seen_ready) >= 2  # unavailable 0
    assert [x.spec.env["GREETING"] for x in launcher.running()] == ["bonjour", "bonjour"]
    assert pool.status() == "complete" and pool.revision.number == 2
    assert len(launcher.started) == 4


async def test_a_revision_that_never_gets_ready_takes_no_traffic_and_undo_restores(
    store, launcher, fleet, tmp_path
) -> None:
    await fleet.apply(bot=TWO)
    r = reconciler(store, launcher, tmp_path)
    await r.sync()
    await ready_all(launcher)
    await r.sync()
    good = {x.spec.replica_id for x in launcher.running()}
    await fleet.apply(bot=TWO_V2)
    for _ in range(3):
        await r.sync()
        await r.settle()
    pool = r.pools["bot"]
    broken = [x for x in launcher.running() if x.spec.replica_id not in good]
    assert len(broken) == 1  # one surge replica, no more, while it is not ready
    broken[0].restarts = 2
    broken[0].last_exit = ExitStatus("ProbeFailed", detail="startup probe: connection refused")
    broken[0].set(ReplicaState.BACKOFF)
    await r.sync()
    assert {t.id for t in pool.routable()} == good
    assert pool.status() == "progressing"
    assert pool.report()["message"] == (
        f"revision 2: 2 ready of 2; 2 replica(s) of older revisions still serving; {broken[0].spec.replica_id} "
        "is backoff after 2 restart(s); last exit: ProbeFailed startup probe: connection refused"
    )
    undone = await r.undo("bot")
    assert (undone.number, undone.cause) == (3, "undo")
    await r.sync()
    await r.settle()
    assert broken[0].stopped
    assert {x.spec.replica_id for x in launcher.running()} == good  # the old replicas were kept
    assert pool.status() == "complete" and pool.revision.number == 3
    history = await r.revisions.history("bot")
    assert [(h.number, h.cause) for h in history] == [(2, "apply"), (3, "undo")]
    assert history[1].digest != history[0].digest
    # The broken spec is still what is applied, but it is not adopted again by the next pass.
    await r.sync()
    assert pool.revision.number == 3


async def test_undo_errors(store, launcher, fleet, tmp_path) -> None:
    await fleet.apply(bot=TWO)
    r = reconciler(store, launcher, tmp_path)
    await r.sync()
    with pytest.raises(RevisionError) as nothing:
        await r.undo("bot")
    assert str(nothing.value) == "agent 'bot' has only revision 1; there is nothing to undo to"
    with pytest.raises(RevisionError) as unknown:
        await r.undo("nobody")
    assert str(unknown.value) == "no agent named 'nobody' is applied"
    await fleet.apply(bot=TWO_V2)
    await r.sync()
    with pytest.raises(RevisionError) as missing:
        await r.undo("bot", to=7)
    assert str(missing.value) == "agent 'bot' has no revision 7 (kept: 1, 2)"
    with pytest.raises(RevisionError) as newest:
        await r.undo("bot", to=2)
    assert str(newest.value) == "revision 2 of agent 'bot' is already the newest"


async def test_reapplying_an_old_spec_reuses_its_revision(store, launcher, fleet, tmp_path) -> None:
    r = reconciler(store, launcher, tmp_path)
    for spec in (TWO, TWO_V2, TWO):
        await fleet.apply(bot=spec)
        await r.sync()
    history = await r.revisions.history("bot")
    assert [h.number for h in history] == [2, 3]  # content-addressed: TWO is one revision, now number 3
    assert history[-1].document["spec"]["env"] == {"GREETING": "hello"}


async def test_a_removed_agent_is_stopped_and_its_key_revoked(store, launcher, fleet, tmp_path) -> None:
    await fleet.apply(bot=TWO)
    r = reconciler(store, launcher, tmp_path)
    await r.sync()
    await fleet.apply()
    await r.sync()
    assert launcher.running() == [] and r.pools == {}
    key = await KeyRepository(store).get(key_name("bot"))
    assert key is not None and key.revoked_at is not None


async def test_a_replica_that_stopped_for_good_is_replaced(store, launcher, fleet, tmp_path) -> None:
    await fleet.apply(bot=TWO.replace("trust: trusted", "trust: trusted\nrestartPolicy: Never"))
    r = reconciler(store, launcher, tmp_path)
    await r.sync()
    await ready_all(launcher)
    gone = launcher.running()[0]
    gone.set(ReplicaState.STOPPED)  # exited; policy Never: the supervisor does not restart it
    await r.sync()
    assert len(launcher.running()) == 2 and gone not in launcher.running()
    assert len(launcher.started) == 3


async def test_an_agent_that_cannot_start_says_why(store, launcher, fleet, tmp_path) -> None:
    spec = TWO + "secrets: [{name: token, env: FLEETPLANE_TEST_MISSING_SECRET}]\n"
    await fleet.apply(bot=spec)
    r = reconciler(store, launcher, tmp_path)
    await r.sync()
    report = r.pools["bot"].report()
    assert report["status"] == "failed"
    assert report["message"] == "Agent/bot: secret 'token': $FLEETPLANE_TEST_MISSING_SECRET is not set"
    assert launcher.started == []


async def test_scale_to_zero_keeps_a_warm_pool_and_promotes_it(store, launcher, fleet, tmp_path) -> None:
    clock = ManualClock()
    spec = TWO.replace("{min: 2, max: 2}", "{min: 0, max: 3}") + (
        "autoscaling: {targetInFlight: 2, upscaleDelay: 0s, downscaleDelay: 30s, scaleToZero: true, warmPool: 1}\n"
    )
    await fleet.apply(bot=spec)
    launcher.auto_ready = True
    r = reconciler(store, launcher, tmp_path, clock=clock)
    await r.sync()
    pool = r.pools["bot"]
    assert (pool.scale.replicas, pool.scale.warm) == (0, 1)
    assert [t.warm for t in pool.replicas] == [True] and pool.routable() == []
    assert pool.status() == "scaled-to-zero"
    warm_id = pool.replicas[0].id
    pool.waiting = 1  # a request arrives and waits for a replica
    await r.sync()
    assert [t.id for t in pool.routable()] == [warm_id]  # promoted, not started
    assert len(launcher.started) == 1
    pool.waiting = 0
    clock.advance(11)  # the in-flight readings leave the averaging window ...
    await r.sync()
    clock.advance(31)  # ... and the downscale delay passes
    await r.sync()
    assert (pool.scale.replicas, pool.scale.reason) == (0, "idle")
    await r.settle()
    await r.sync()
    assert pool.status() == "scaled-to-zero"
    assert [t.warm for t in pool.replicas] == [True] and pool.replicas[0].id != warm_id


async def test_autoscaling_up_under_load_and_down_when_idle(store, launcher, fleet, tmp_path) -> None:
    clock = ManualClock()
    spec = TWO.replace("{min: 2, max: 2}", "{min: 1, max: 3}") + (
        "autoscaling: {targetInFlight: 2, upscaleDelay: 5s, downscaleDelay: 30s}\n"
    )
    await fleet.apply(bot=spec)
    launcher.auto_ready = True
    r = reconciler(store, launcher, tmp_path, clock=clock)
    await r.sync()
    pool = r.pools["bot"]
    assert len(pool.routable()) == 1
    busy = pool.routable()[0]
    for _ in range(6):  # six requests in flight on one replica: the balancer's counts
        busy.begin()
    counts = []
    for _ in range(6):
        clock.advance(1)
        await r.sync()
        counts.append(len(pool.routable()))
    assert counts == [1, 1, 1, 1, 1, 3]  # ceil(6 / 2) = 3, once more was wanted for the 5 s upscale delay
    assert pool.scale.reason == "in flight 6.0, target 2 per replica"
    for _ in range(6):
        busy.end()
    clock.advance(4)  # the readings of load leave the averaging window
    await r.sync()
    clock.advance(29)
    await r.sync()
    assert len(pool.routable()) == 3  # not before the downscale delay
    clock.advance(2)
    await r.sync()
    await r.settle()
    assert len(pool.routable()) == 1 and pool.scale.reason == "idle"
    assert len(launcher.running()) == 1


async def test_one_agent_failing_does_not_stop_the_others(store, launcher, fleet, tmp_path) -> None:
    class Refusing:
        """Starts replicas of every agent but 'bad' (whose start blows up unexpectedly)."""

        async def start(self, spec):  # type: ignore[no-untyped-def]
            if spec.agent == "bad":
                raise OSError("no space left on device")
            return await launcher.start(spec)

        async def close(self) -> None:
            return None

    await fleet.apply(bad=TWO, good=TWO)
    r = reconciler(store, Refusing(), tmp_path)
    await r.sync()
    assert r.pools["bad"].report()["message"] == "reconciling revision 1 failed: no space left on device"
    assert r.pools["bad"].status() == "failed"
    assert len(launcher.running("good")) == 2  # the same spec as "bad": a revision of its own
