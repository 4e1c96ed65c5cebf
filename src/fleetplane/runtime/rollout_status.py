"""The rollout's status line (`rollout status`, `agents list`): how far the newest revision is, and why not
further — replicas not ready with their last exit, a stall, or a rollout gate running or blocking."""

from __future__ import annotations

from fleetplane.runtime.gate import gate_message
from fleetplane.runtime.pool import AgentPool


def rollout_message(pool: AgentPool, *, now: float, deadline: float) -> str:
    """What `rollout status` says of the pool's newest revision: ready of wanted, what still serves, the
    first replica not ready and why, a stall past `deadline` seconds, or its rollout gate's state."""
    if pool.error:
        return pool.error
    status = pool.status()
    if pool.gate is not None and pool.revision.number in (pool.gate.number, pool.gate.undone):
        held = [t for t in pool.current() if t.held]
        said = gate_message(
            pool.gate,
            len(pool.routable()),
            held[0].id if held else None,
            held[0].state.value if held else None,
        )
        if said is not None:
            return said
    if status == "complete":
        return f"revision {pool.revision.number}: {pool.scale.replicas} replica(s) ready"
    if status == "scaled-to-zero":
        return f"revision {pool.revision.number}: scaled to zero ({pool.scale.warm} warm)"
    waiting = [t for t in pool.current() if not t.ready]
    parts = [f"revision {pool.revision.number}: {len(pool.routable())} ready of {pool.scale.replicas}"]
    if pool.outdated():
        parts.append(f"{len(pool.outdated())} replica(s) of older revisions still serving")
    for t in waiting[:1]:
        last = t.replica.last_exit
        detail = f"; last exit: {last.reason} {last.detail or last.code or last.signal or ''}" if last else ""
        parts.append(f"{t.id} is {t.state.value} after {t.replica.restarts} restart(s){detail}".strip())
    if now - pool.rollout_started > deadline and waiting:
        parts.append(f"no progress in {deadline:g}s (stalled)")
    return "; ".join(parts)
