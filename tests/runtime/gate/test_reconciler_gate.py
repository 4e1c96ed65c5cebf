"""The reconciler with a fake rollout gate: a block stops the rollout and keeps the old revision serving,
a pass lets it complete, a failing gate blocks with its error, and the gate runs off the loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fleetplane.runtime.gate import GateRequest, GateVerdict
from fleetplane.runtime.keys import AgentKeys
from fleetplane.runtime.reconciler import Reconciler
from fleetplane.runtime.replica import ReplicaState
from fleetplane.runtime.specs import SpecSettings

pytestmark = pytest.mark.anyio

GATED = """\
run: {command: [python3, app.py]}
replicas: {min: 2, max: 2}
trust: trusted
isolation: process
env: {GREETING: hello}
rollout: {gate: {suite: agent-bot, margin: 0.05}}
"""
GATED_V2 = GATED.replace("hello", "bonjour")
PLAIN = """\
run: {command: [python3, other.py]}
trust: trusted
isolation: process
"""


class FakeGate:
    """Answers with `verdict` (or raises `error`) once `release` is set; records what it was asked."""

    def __init__(self, verdict: GateVerdict | None = None, error: Exception | None = None) -> None:
        self.verdict = verdict
        self.error = error
        self.release = asyncio.Event()
        self.asked: list[GateRequest] = []

    async def __call__(self, request: GateRequest) -> GateVerdict:
        self.asked.append(request)
        await self.release.wait()
        if self.error is not None:
            raise self.error
        assert self.verdict is not None
        return self.verdict


def reconciler(store, launcher, tmp_path: Path, gate) -> Reconciler:  # type: ignore[no-untyped-def]
    settings = SpecSettings(log_dir=tmp_path / "logs", gateway_url="http://127.0.0.1:9", stop_grace=0.1)
    return Reconciler(
        store, launcher, settings, keys=AgentKeys(store), fleet_dir=tmp_path / "fleet", gate=gate
    )


async def ready_all(launcher, agent: str = "bot") -> None:  # type: ignore[no-untyped-def]
    for replica in launcher.running(agent):
        if replica.state != ReplicaState.READY:
            replica.set(ReplicaState.READY)


def greetings(launcher) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(x.spec.env["GREETING"] for x in launcher.running("bot"))


async def rolled_to_v2(store, launcher, fleet, tmp_path, gate) -> Reconciler:  # type: ignore[no-untyped-def]
    """Revision 1 serving on two ready replicas, revision 2 applied, its surge replica started and ready."""
    await fleet.apply(bot=GATED)
    r = reconciler(store, launcher, tmp_path, gate)
    await r.sync()
    await ready_all(launcher)
    await r.sync()
    assert r.pools["bot"].status() == "complete"  # the first revision has nothing to be gated against
    await fleet.apply(bot=GATED_V2)
    await r.sync()
    pool = r.pools["bot"]
    [surge] = pool.current()
    assert surge.held and surge.number == 2
    assert pool.report()["message"] == (
        "revision 2: rollout gate (agent-bot) waits for the new revision's surge replica "
        f"({surge.id} is starting); revision 1 serving"
    )
    await ready_all(launcher)
    await r.sync()
    return r


async def test_a_blocking_gate_stops_the_rollout_and_the_old_revision_keeps_serving(
    store, launcher, fleet, tmp_path
) -> None:
    gate = FakeGate(GateVerdict(False, "brevity regressed: pass rate 0.90 -> 0.40"))
    r = await rolled_to_v2(store, launcher, fleet, tmp_path, gate)
    pool = r.pools["bot"]
    old = {t.id for t in pool.outdated()}
    [surge] = pool.current()
    # While the gate runs the surge replica is ready but takes only pinned invokes; nothing old stops.
    assert surge.ready and not surge.routable
    assert {t.id for t in pool.routable()} == old
    assert pool.pick() is not None and pool.pick().id in old
    assert pool.pick(revision=2) is surge
    assert pool.pick(revision=1).id in old
    for _ in range(3):
        await r.sync()
        await r.settle()
    assert gate.asked == [GateRequest("bot", "agent-bot", 0.05, candidate=2, baseline=1)]
    assert len(launcher.running("bot")) == 3 and pool.status() == "progressing"
    assert pool.report()["message"] == (
        "revision 2: rollout gate (agent-bot) running against revision 1, which serves"
    )
    gate.release.set()
    assert pool.gate is not None and pool.gate.task is not None
    await pool.gate.task
    await r.sync()
    await r.settle()
    await r.sync()  # the block rolled back: the serving spec is the newest again, as revision 3
    await r.settle()
    assert launcher.started[2].stopped  # the surge replica is removed
    assert greetings(launcher) == ["hello", "hello"]
    assert {t.id for t in pool.routable()} == old
    assert pool.status() == "blocked" and pool.revision.number == 3
    history = await r.revisions.history("bot")
    assert [(h.number, h.cause) for h in history] == [(2, "apply"), (3, "undo")]  # 3 is revision 1's spec
    assert {t.digest for t in pool.routable()} == {history[1].digest} != {history[0].digest}
    report = pool.report()
    assert report["message"] == (
        "revision 2 blocked by its rollout gate (agent-bot): brevity regressed: pass rate 0.90 -> 0.40; "
        "revision 1 keeps serving as revision 3 (2 ready)"
    )
    assert report["gate"] == {
        "suite": "agent-bot",
        "candidate": 2,
        "baseline": 1,
        "state": "blocked",
        "reason": "brevity regressed: pass rate 0.90 -> 0.40",
    }
    for _ in range(2):  # it stays blocked: no new surge replica, the gate is not asked again
        await r.sync()
        await r.settle()
    assert len(launcher.started) == 3 and len(gate.asked) == 1
    assert {t.id for t in pool.routable()} == old
    # A fixed spec applied: revision 4, gated again against the serving replicas (started as revision 1).
    gate.release.clear()
    gate.verdict = GateVerdict(True, "fixed")
    await fleet.apply(bot=GATED.replace("hello", "hallo"))
    await r.sync()
    await ready_all(launcher)
    await r.sync()
    await asyncio.sleep(0)
    assert pool.status() == "progressing" and pool.revision.number == 4
    assert gate.asked[-1] == GateRequest("bot", "agent-bot", 0.05, candidate=4, baseline=1)
    gate.release.set()
    assert pool.gate is not None and pool.gate.task is not None
    await pool.gate.task
    for _ in range(4):
        await r.sync()
        await r.settle()
        await ready_all(launcher)
    assert pool.status() == "complete" and greetings(launcher) == ["hallo", "hallo"]
    await r.stop()


async def test_a_passing_gate_lets_the_rollout_complete(store, launcher, fleet, tmp_path) -> None:
    gate = FakeGate(GateVerdict(True, "no regression on brevity"))
    r = await rolled_to_v2(store, launcher, fleet, tmp_path, gate)
    pool = r.pools["bot"]
    gate.release.set()
    assert pool.gate is not None and pool.gate.task is not None
    await pool.gate.task
    seen_ready = []
    for _ in range(6):
        await r.sync()
        await r.settle()
        seen_ready.append(len(pool.routable()))
        assert len(launcher.running("bot")) <= 3  # surge 1 after the gate, too
        await ready_all(launcher)
    assert min(seen_ready) >= 2  # unavailable 0
    assert greetings(launcher) == ["bonjour", "bonjour"]
    assert pool.status() == "complete" and pool.revision.number == 2
    assert all(not t.held for t in pool.replicas)
    assert pool.report()["gate"]["state"] == "passed"
    assert pool.report()["message"] == "revision 2: 2 replica(s) ready"
    assert len(gate.asked) == 1 and len(launcher.started) == 4


async def test_a_failing_gate_blocks_with_its_error_as_the_reason(store, launcher, fleet, tmp_path) -> None:
    gate = FakeGate(error=RuntimeError("no EvalSuite named 'agent-bot'"))
    r = await rolled_to_v2(store, launcher, fleet, tmp_path, gate)
    pool = r.pools["bot"]
    gate.release.set()
    assert pool.gate is not None and pool.gate.task is not None
    await pool.gate.task
    await r.sync()
    await r.sync()
    await r.settle()
    assert pool.status() == "blocked"
    assert pool.report()["message"] == (
        "revision 2 blocked by its rollout gate (agent-bot): the rollout gate failed: RuntimeError: "
        "no EvalSuite named 'agent-bot'; revision 1 keeps serving as revision 3 (2 ready)"
    )
    assert greetings(launcher) == ["hello", "hello"]


async def test_without_a_gate_on_the_server_a_gated_agent_does_not_roll_out(
    store, launcher, fleet, tmp_path
) -> None:
    await fleet.apply(bot=GATED)
    r = reconciler(store, launcher, tmp_path, None)
    await r.sync()
    await ready_all(launcher)
    await r.sync()
    await fleet.apply(bot=GATED_V2)
    await r.sync()
    await r.sync()
    await r.settle()
    pool = r.pools["bot"]
    assert pool.status() == "blocked" and len(launcher.started) == 2
    assert pool.report()["message"] == (
        "revision 2 blocked by its rollout gate (agent-bot): this server has no rollout gate to run the "
        "suite; revision 1 keeps serving as revision 3 (2 ready)"
    )


async def test_the_gate_runs_off_the_loop_and_a_new_apply_cancels_it(
    store, launcher, fleet, tmp_path
) -> None:
    gate = FakeGate(GateVerdict(True, "fine"))
    r = await rolled_to_v2(store, launcher, fleet, tmp_path, gate)
    pool = r.pools["bot"]
    running = pool.gate
    assert running is not None and running.task is not None and not running.task.done()
    # Another agent is applied and converges while the gate has not answered.
    await fleet.apply(bot=GATED_V2, other=PLAIN)
    await r.sync()
    await ready_all(launcher, "other")
    await r.sync()
    assert r.pools["other"].status() == "complete"
    assert not running.task.done()
    # A third spec is applied: the running gate is cancelled and revision 3 gets a gate of its own.
    await fleet.apply(bot=GATED.replace("hello", "hallo"), other=PLAIN)
    await r.sync()
    await r.settle()
    assert running.task.cancelled()
    assert pool.gate is not None and pool.gate.number == 3 and pool.gate.state == "running"
    [surge] = pool.current()
    assert surge.replica.spec.env["GREETING"] == "hallo"
    assert surge.held and launcher.started[2].stopped  # revision 2's surge replica is gone
    await r.stop()


async def test_a_second_blocked_revision_rolls_back_to_the_same_serving_spec(
    store, launcher, fleet, tmp_path
) -> None:
    gate = FakeGate(GateVerdict(False, "worse"))
    gate.release.set()
    r = await rolled_to_v2(store, launcher, fleet, tmp_path, gate)
    pool = r.pools["bot"]
    old = {t.id for t in pool.outdated()}
    for _ in range(3):
        await asyncio.sleep(0)
        await r.sync()
        await r.settle()
    assert (pool.status(), pool.revision.number) == ("blocked", 3)
    await fleet.apply(bot=GATED.replace("hello", "hallo"))  # revision 4, as bad
    for _ in range(4):
        await r.sync()
        await ready_all(launcher)
        await asyncio.sleep(0)
        await r.settle()
    history = await r.revisions.history("bot")
    assert [(h.number, h.cause) for h in history] == [(2, "apply"), (4, "apply"), (5, "undo")]
    assert (pool.status(), pool.revision.number) == ("blocked", 5)
    assert pool.report()["message"] == (
        "revision 4 blocked by its rollout gate (agent-bot): worse; "
        "revision 1 keeps serving as revision 5 (2 ready)"
    )
    assert {t.id for t in pool.routable()} == old and greetings(launcher) == ["hello", "hello"]
    assert [(a.candidate, a.baseline) for a in gate.asked] == [(2, 1), (4, 1)]
