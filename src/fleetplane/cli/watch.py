"""`fleetplane up --watch`: keep the served directory and what runs converged, GitOps-style.

Every `interval` seconds the directory's manifest files (and, in a git work tree, its HEAD commit) are
fingerprinted. A change re-applies the directory (a directory that no longer validates is reported and
nothing is applied). Between changes, drift is reported — once per distinct finding: documents in the
store that differ from the directory (someone applied something else), and agents whose running revision
is not the directory's spec (a `rollout undo`). Drift is reported, never reverted: undoing an undo would
fight the operator (the argo-cd auto-sync problem); a new commit is how a fix rolls forward.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.errors import ManifestErrors
from fleetplane.manifests.loader import load
from fleetplane.manifests.plan import plan
from fleetplane.runtime.service import AgentService
from fleetplane.state.clock import SYSTEM_CLOCK
from fleetplane.store.applied import AppliedRepository
from fleetplane.store.db import Store
from fleetplane.store.desired import ApplyError, apply_desired

log = logging.getLogger("fleetplane.watch")

Fingerprint = tuple[str | None, tuple[tuple[str, int, int], ...]]


def git_head(directory: Path) -> str | None:
    """The HEAD commit when `directory` is inside a git work tree, else None."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def fingerprint(directory: Path) -> Fingerprint:
    """What a change of the fleet changes: every YAML file's path, size and mtime, and the git HEAD."""
    files = sorted(
        (str(p.relative_to(directory)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in directory.rglob("*")
        if p.suffix in (".yaml", ".yml", ".md") and p.is_file() and ".git" not in p.parts
    )
    return git_head(directory), tuple(files)


class FleetWatcher:
    def __init__(
        self,
        directory: Path,
        store: Store,
        agents: AgentService | None = None,
        *,
        interval: float = 2.0,
        report: Callable[[str], None] = print,
    ) -> None:
        self.directory = directory
        self.store = store
        self.agents = agents
        self.interval = interval
        self.report = report
        self._last: Fingerprint | None = None
        self._desired: DesiredState | None = None
        self._drift: tuple[str, ...] = ()

    async def start(self) -> None:
        """Remember what the directory is now (it was just applied by `up`)."""
        self._last = await asyncio.to_thread(fingerprint, self.directory)
        self._desired = await asyncio.to_thread(load, self.directory)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception:
                log.exception("watching %s failed; trying again", self.directory)

    async def tick(self) -> None:
        """One look: re-apply on a change, else report drift."""
        now = await asyncio.to_thread(fingerprint, self.directory)
        if now != self._last:
            before, self._last = self._last, now
            commit = now[0]
            reason = (
                f"new commit {commit[:12]}"
                if commit and (before is None or before[0] != commit)
                else "changed"
            )
            await self._apply(reason)
        await self._report_drift()

    async def _apply(self, reason: str) -> None:
        try:
            desired = await asyncio.to_thread(load, self.directory)
        except ManifestErrors as errors:
            for error in errors.errors:
                self.report(str(error))
            self.report(
                f"watch: {self.directory} {reason} but has {len(errors.errors)} problem(s); nothing applied"
            )
            return
        try:
            result = await apply_desired(self.store, desired, now=SYSTEM_CLOCK.now())
        except ApplyError as exc:
            self.report(f"watch: {self.directory} {reason} but could not be applied: {exc}")
            return
        self._desired = desired
        changes = [f"{c.action} {c.ref}" for c in result.plan.changes if c.action != "unchanged"]
        summary = ", ".join(changes) if changes else "no change to apply"
        self.report(f"watch: {self.directory} {reason}: {summary} (generation {result.generation})")
        for minted in result.minted:
            self.report(f"minted key {minted.key}: {minted.secret}  (shown once)")
        if self.agents is not None and self.agents.reconciler is not None:
            self.agents.reconciler.wake()

    async def drift(self) -> list[str]:
        """What differs between the directory and what is applied or runs."""
        if self._desired is None:
            return []
        findings = []
        applied = await AppliedRepository(self.store).all()
        for change in plan(self._desired, applied, prune=True).changes:
            if change.action != "unchanged":
                findings.append(
                    f"{change.ref} in the store differs from {self.directory} ({change.action} to converge)"
                )
        reconciler = self.agents.reconciler if self.agents is not None else None
        if reconciler is not None:
            adopted = await reconciler.revisions.adopted()
            for name, pool in sorted(reconciler.pools.items()):
                if pool.revision.cause == "undo" and adopted.get(name) == reconciler.applied.get(name):
                    findings.append(
                        f"Agent/{name} runs revision {pool.revision.number} (rollout undo), not the spec in "
                        f"{self.directory}; commit a fix to roll forward"
                    )
        return findings

    async def _report_drift(self) -> None:
        findings = tuple(await self.drift())
        if findings == self._drift:
            return
        self._drift = findings
        if not findings:
            self.report(f"watch: no drift: what runs is {self.directory}")
        for finding in findings:
            self.report(f"drift: {finding}")
