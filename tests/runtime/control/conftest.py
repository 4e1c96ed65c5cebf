"""Fixtures of the control plane's tests: a store with a team, a fake launcher whose replicas tests move
by hand (unit tests of decisions), and a helper that applies Agent manifests."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any

import pytest

from fleetplane.manifests.loader import load
from fleetplane.runtime.replica import ExitStatus, ReplicaSpec, ReplicaState, StateCallback, log_path
from fleetplane.store.db import Store
from fleetplane.store.desired import apply_desired

T0 = 1_700_000_000.0

TENANCY = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {name: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {name: support}
spec: {organization: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata: {name: sim}
spec: {type: sim}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: chat}
spec:
  family: sim-gpt
  contextWindow: 32000
  deployments:
    - {provider: sim, model: sim-small}
"""


def agent_yaml(name: str, spec: str) -> str:
    head = f"apiVersion: fleetplane.dev/v1alpha1\nkind: Agent\nmetadata:\n  name: {name}\nspec:\n"
    return head + textwrap.indent(textwrap.dedent(spec), "  ")


class FakeReplica:
    """A replica whose state a test sets; it records being stopped."""

    def __init__(self, spec: ReplicaSpec) -> None:
        self.spec = spec
        self._state = ReplicaState.STARTING
        self._callbacks: list[StateCallback] = []
        self.stopped = False
        self.restarts = 0
        self.last_exit: ExitStatus | None = None
        self.pid: int | None = 4242
        self.endpoint = f"/nonexistent/{spec.replica_id}.sock"  # a test points it at a real socket

    @property
    def state(self) -> ReplicaState:
        return self._state

    @property
    def log_path(self) -> Path:
        return log_path(self.spec)

    def set(self, state: ReplicaState) -> None:
        old, self._state = self._state, state
        for callback in list(self._callbacks):
            callback(self, old, state)  # type: ignore[arg-type]

    def on_change(self, callback: StateCallback) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    async def wait_for(self, states: Collection[ReplicaState], timeout: float | None = None) -> ReplicaState:
        if self._state in states:
            return self._state
        raise TimeoutError

    async def stop(self, grace: float | None = None) -> None:
        self.stopped = True
        self.set(ReplicaState.STOPPED)


class FakeLauncher:
    def __init__(self) -> None:
        self.started: list[FakeReplica] = []
        self.auto_ready = False  # mark each replica READY as soon as it starts
        self.endpoint: str | None = None  # where every replica's endpoint leads, when set

    async def start(self, spec: ReplicaSpec) -> FakeReplica:
        replica = FakeReplica(spec)
        if self.auto_ready:
            replica._state = ReplicaState.READY
        if self.endpoint is not None:
            replica.endpoint = self.endpoint
        self.started.append(replica)
        return replica

    async def close(self) -> None:
        return None

    def running(self, agent: str | None = None) -> list[FakeReplica]:
        return [
            r
            for r in self.started
            if r.state != ReplicaState.STOPPED and (agent is None or r.spec.agent == agent)
        ]


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher()


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(sqlite_url)
    try:
        yield opened
    finally:
        await opened.close()


class Fleet:
    """A fleet directory whose Agent manifests a test rewrites and applies."""

    def __init__(self, store: Store, directory: Path) -> None:
        self.store = store
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "tenancy.yaml").write_text(TENANCY)
        self.now = T0

    async def apply(self, **agents: str) -> Any:
        for old in self.directory.glob("agent-*.yaml"):
            old.unlink()
        for name, spec in agents.items():
            (self.directory / f"agent-{name}.yaml").write_text(agent_yaml(name, spec))
        self.now += 1
        return await apply_desired(self.store, load(self.directory), now=self.now)


@pytest.fixture
def fleet(store: Store, tmp_path: Path) -> Fleet:
    return Fleet(store, tmp_path / "fleet")
