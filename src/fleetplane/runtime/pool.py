"""One agent's replicas as the control plane tracks them: which revision each runs, which take traffic,
how many requests each has in flight, and the rollout's progress. The reconciler changes a pool; the
balancer reads it and counts requests in and out; the autoscaler reads its totals.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from fleetplane.runtime.autoscaler import Autoscaler, Scale
from fleetplane.runtime.gate import GateRun
from fleetplane.runtime.replica import Replica, ReplicaState
from fleetplane.runtime.revisions import AgentRevision


@dataclass(eq=False)
class Tracked:
    """A replica the reconciler started, with what it was started as."""

    replica: Replica
    digest: str  # the revision it runs
    number: int
    started_at: float
    warm: bool = False  # started for the warm pool: takes no traffic until promoted
    in_flight: int = 0
    served: int = 0
    stopping: bool = False
    gpu_owner: str | None = None
    held: bool = False  # a new revision's surge replica while its rollout gate runs: pinned invokes only
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set whenever nothing is in flight

    def __post_init__(self) -> None:
        self.idle.set()

    def begin(self) -> None:
        """A request was sent to this replica."""
        self.in_flight += 1
        self.idle.clear()

    def end(self) -> None:
        self.in_flight -= 1
        self.served += 1
        if self.in_flight == 0:
            self.idle.set()

    @property
    def id(self) -> str:
        return self.replica.spec.replica_id

    @property
    def state(self) -> ReplicaState:
        return self.replica.state

    @property
    def ready(self) -> bool:
        return self.replica.state == ReplicaState.READY and not self.stopping

    @property
    def routable(self) -> bool:
        return self.ready and not self.warm and not self.held

    def report(self) -> dict[str, Any]:
        last = self.replica.last_exit
        return {
            "id": self.id,
            "revision": self.number,
            "digest": self.digest,
            "state": self.replica.state.value,
            "warm": self.warm,
            "held": self.held,
            "in_flight": self.in_flight,
            "served": self.served,
            "restarts": self.replica.restarts,
            "pid": self.replica.pid,
            "started_at": self.started_at,
            "log": str(self.replica.log_path),
            "last_exit": None
            if last is None
            else {"reason": last.reason, "code": last.code, "signal": last.signal, "detail": last.detail},
        }


@dataclass(eq=False)
class AgentPool:
    name: str
    revision: AgentRevision  # what should run
    replicas: list[Tracked] = field(default_factory=list)
    autoscaler: Autoscaler | None = None
    scale: Scale = field(default_factory=lambda: Scale(1, 0, "initial"))
    waiting: int = 0  # requests waiting for a ready replica
    rollout_started: float = 0.0
    rollout_message: str = ""
    error: str | None = None  # why the revision cannot start here (refused tier, unreadable secret)
    # Set whenever a replica changes state or the pool is converged: requests waiting for a ready
    # replica look again.
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    gate: GateRun | None = None  # the rollout gate of the newest revision, when its spec names one
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def in_flight(self) -> int:
        return sum(t.in_flight for t in self.replicas) + self.waiting

    def current(self) -> list[Tracked]:
        return [t for t in self.replicas if t.digest == self.revision.digest and not t.stopping]

    def outdated(self) -> list[Tracked]:
        return [t for t in self.replicas if t.digest != self.revision.digest and not t.stopping]

    def routable(self) -> list[Tracked]:
        return [t for t in self.replicas if t.routable]

    def blocked(self) -> bool:
        gate = self.gate
        # Blocked while the blocked revision, or the undo its block made, is the newest.
        return (
            gate is not None
            and gate.state == "blocked"
            and self.revision.number in (gate.number, gate.undone)
        )

    def pick(self, exclude: frozenset[str] = frozenset(), revision: int | None = None) -> Tracked | None:
        """The ready replica with the fewest requests in flight; ties taken in turn. With `revision`, only
        that revision's ready replicas, a held surge replica included (how a rollout gate reaches it)."""
        if revision is None:
            ready = [t for t in self.routable() if t.id not in exclude]
        else:
            ready = [
                t
                for t in self.replicas
                if t.number == revision and t.ready and not t.warm and t.id not in exclude
            ]
        if not ready:
            return None
        fewest = min(t.in_flight for t in ready)
        least = [t for t in ready if t.in_flight == fewest]
        return least[next(self._turn) % len(least)]

    def leftover(self) -> list[Tracked]:
        """Replicas of another revision still here, retiring ones included: a retiring replica is out of
        the balancer but still running (and listed) until its stop ends, and the rollout with it."""
        return [t for t in self.replicas if t.digest != self.revision.digest]

    def status(self) -> str:
        """complete | progressing | blocked | failed | scaled-to-zero (as `rollout status` prints it)."""
        if self.error:
            return "failed"
        if self.blocked():
            return "blocked"
        current = [t for t in self.current() if not t.warm]
        if self.scale.replicas == 0 and not current and not self.leftover():
            return "scaled-to-zero"
        # complete: only the target revision's replicas remain (as many as wanted, all ready)
        if not self.leftover() and len(current) == self.scale.replicas and all(t.ready for t in current):
            return "complete"
        return "progressing"

    def report(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision.number,
            "digest": self.revision.digest,
            "status": self.status(),
            "message": self.error or self.rollout_message,
            "desired": self.scale.replicas,
            "warm": self.scale.warm,
            "scale_reason": self.scale.reason,
            "ready": len([t for t in self.replicas if t.routable]),
            "in_flight": self.in_flight,
            "replicas": [t.report() for t in self.replicas],
            "gate": self.gate.report() if self.gate is not None else None,
        }
