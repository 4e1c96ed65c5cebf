"""`fleetplane up --watch`: a changed directory or a new git commit is re-applied; a directory that no
longer validates applies nothing; drift (the store differs, an agent was undone) is reported once."""

# ruff: noqa: E501

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fleetplane.cli.watch import FleetWatcher, git_head
from fleetplane.manifests.loader import load
from fleetplane.runtime.reconciler import declared_tier
from fleetplane.runtime.service import AgentService, RuntimeSettings
from fleetplane.store.applied import AppliedRepository
from fleetplane.store.desired import apply_desired

pytestmark = pytest.mark.anyio

AGENT = """\
run: {command: [python3, app.py]}
trust: trusted
isolation: process
env: {V: "1"}
"""


def git(directory: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


async def test_changes_are_applied_and_bad_ones_are_not(store, fleet) -> None:
    await fleet.apply(bot=AGENT)
    said: list[str] = []
    watcher = FleetWatcher(fleet.directory, store, report=said.append, interval=0)
    await watcher.start()
    await watcher.tick()
    assert said == []  # nothing changed, nothing drifted
    agent_file = fleet.directory / "agent-bot.yaml"
    agent_file.write_text(agent_file.read_text().replace('V: "1"', 'V: "2"'))
    await watcher.tick()
    assert said == [f"watch: {fleet.directory} changed: update Agent/bot (generation 2)"]
    applied = await AppliedRepository(store).all()
    assert applied[("Agent", "bot")].document["spec"]["env"] == {"V": "2"}
    said.clear()
    agent_file.write_text(agent_file.read_text().replace("trust: trusted", "trust: nobody"))
    await watcher.tick()
    assert said[-1] == f"watch: {fleet.directory} changed but has 1 problem(s); nothing applied"
    assert (await AppliedRepository(store).generation()) == 2


async def test_a_new_commit_is_applied(store, fleet) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    await fleet.apply(bot=AGENT)
    git(fleet.directory, "init", "-q")
    git(fleet.directory, "add", ".")
    git(fleet.directory, "commit", "-qm", "first")
    said: list[str] = []
    watcher = FleetWatcher(fleet.directory, store, report=said.append, interval=0)
    await watcher.start()
    agent_file = fleet.directory / "agent-bot.yaml"
    agent_file.write_text(agent_file.read_text().replace('V: "1"', 'V: "3"'))
    git(fleet.directory, "commit", "-qam", "second")
    head = git_head(fleet.directory) or ""
    await watcher.tick()
    assert said == [f"watch: {fleet.directory} new commit {head[:12]}: update Agent/bot (generation 2)"]


async def test_drift_is_reported_once_per_finding(store, fleet, launcher, tmp_path) -> None:
    await fleet.apply(bot=AGENT)
    agents = AgentService(
        store,
        RuntimeSettings(fleet_dir=fleet.directory, root=tmp_path / "rt"),
        launcher=launcher,
        tiers=declared_tier,
    )
    await agents.start()
    try:
        said: list[str] = []
        watcher = FleetWatcher(fleet.directory, store, agents, report=said.append, interval=0)
        await watcher.start()
        # Someone applies another directory: the store differs from the watched one.
        other = tmp_path / "other"
        shutil.copytree(fleet.directory, other)
        (other / "agent-bot.yaml").write_text(
            (other / "agent-bot.yaml").read_text().replace('V: "1"', 'V: "9"')
        )
        await apply_desired(agents.store, load(other), now=fleet.now + 5)
        await agents.reconciler.sync()
        await watcher.tick()
        await watcher.tick()
        assert said == [f"drift: Agent/bot in the store differs from {fleet.directory} (update to converge)"]
        # Back to the watched directory's spec (revision 1 reused as 3), then an undo to revision 2's spec
        # (now 4): the agent runs what the directory does not say.
        await apply_desired(agents.store, load(fleet.directory), now=fleet.now + 6)
        await agents.reconciler.sync()
        await agents.reconciler.undo("bot")
        await agents.reconciler.sync()
        said.clear()
        await watcher.tick()
        assert said == [
            f"drift: Agent/bot runs revision 4 (rollout undo), not the spec in {fleet.directory}; commit a fix to roll forward"
        ]
    finally:
        await agents.stop()
