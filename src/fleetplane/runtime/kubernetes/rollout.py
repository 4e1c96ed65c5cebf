"""Rollback on Kubernetes: apply an agent's previous revision again (from the history kept in the
cluster), prune what that revision did not have, and record it as the newest revision — as
`kubectl rollout undo` does for a ReplicaSet, but for every object of the agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetplane.runtime.kubernetes.apply import apply_object, managed_objects, prune_objects
from fleetplane.runtime.kubernetes.cluster import connect
from fleetplane.runtime.kubernetes.history import Entry, read_history, record
from fleetplane.runtime.kubernetes.render import ref


class RolloutError(RuntimeError):
    """No revision to go back to, or the asked revision is not in the history."""


@dataclass
class UndoResult:
    agent: str
    from_revision: str
    to_revision: str
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)


def history(client: Any, agent: str, namespace: str) -> list[Entry]:
    return read_history(client, agent, namespace)


def undo(
    client: Any, agent: str, namespace: str, *, to_revision: str | None = None, history_limit: int = 10
) -> UndoResult:
    """Apply `to_revision` (default: the newest revision before the current one) of `agent`."""
    entries = read_history(client, agent, namespace)
    if not entries:
        raise RolloutError(f"agent {agent!r} has no revision history in namespace {namespace!r}")
    current = entries[-1]
    if to_revision is None:
        older = [e for e in entries[:-1] if e.revision != current.revision]
        if not older:
            raise RolloutError(f"agent {agent!r} has no revision before {current.revision}")
        target = older[-1]
    else:
        matches = [e for e in entries if e.revision == to_revision or e.revision.startswith(to_revision)]
        if not matches:
            known = ", ".join(e.revision for e in entries)
            raise RolloutError(f"agent {agent!r} has no revision {to_revision!r} (known: {known})")
        target = matches[-1]
    result = UndoResult(agent, current.revision, target.revision)
    for obj in target.objects:
        apply_object(client, obj)
        result.applied.append(ref(obj))
    # Secrets are not part of a revision: keep them whatever the target lists.
    keep = {(o["kind"], o["metadata"]["name"]) for o in target.objects}
    keep |= {(kind, name) for kind, name in _secrets(client, agent, namespace)}
    result.pruned = prune_objects(client, namespace, keep=keep, agent=agent)
    record(client, agent, namespace, target.revision, target.objects, limit=history_limit)
    return result


def _secrets(client: Any, agent: str, namespace: str) -> list[tuple[str, str]]:
    return [(k, n) for k, n, _ in managed_objects(client, namespace, agent=agent) if k == "Secret"]


def rollout_undo_kubernetes(
    agent: str,
    *,
    namespace: str = "fleetplane",
    kubeconfig: str | Path | None = None,
    to_revision: str | None = None,
) -> UndoResult:
    """`fleetplane rollout undo AGENT --target kubernetes`: connect, then `undo`."""
    client = connect(kubeconfig, namespace)
    try:
        return undo(client, agent, namespace, to_revision=to_revision)
    finally:
        client.close()


def rollout_history_kubernetes(
    agent: str, *, namespace: str = "fleetplane", kubeconfig: str | Path | None = None
) -> list[Entry]:
    """`fleetplane rollout history AGENT --target kubernetes`: the revisions, oldest first."""
    client = connect(kubeconfig, namespace)
    try:
        return read_history(client, agent, namespace)
    finally:
        client.close()
