"""Agent revisions: every Agent spec the runtime runs is a content-addressed revision, kept with its history.

A revision's digest is the sha256 of the spec's canonical JSON (labels and annotations make no new
revision). History is ordered by `number`; running an older spec again — an undo, or re-applying it —
gives that revision the next number, as Kubernetes does with a ReplicaSet's revision annotation, so the
revision with the highest number is the one that should run. `rollout undo` therefore writes one row and
the reconciler converges to it like to any other change.

An applied manifest is adopted once per digest of the manifest (`agent_rollouts`): after an undo the
broken spec is still what is applied, and it is not adopted again until a different spec is applied. The
difference between what is applied and what runs is reported as drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, update

from fleetplane.manifests.plan import digest as document_digest
from fleetplane.store.db import Store
from fleetplane.store.tables import agent_revisions, agent_rollouts

Cause = Literal["apply", "undo"]
HISTORY_LIMIT = 10  # revisions kept per agent (Kubernetes' revisionHistoryLimit default)


class RevisionError(Exception):
    """A rollout request that cannot be carried out (no such agent, no earlier revision)."""


def spec_digest(document: dict[str, Any]) -> str:
    """The revision's content address: the digest of the spec alone."""
    return document_digest({"spec": document.get("spec") or {}})


@dataclass(frozen=True)
class AgentRevision:
    agent: str
    digest: str
    number: int
    document: dict[str, Any]
    base_dir: str | None
    cause: str
    created_at: float
    updated_at: float

    @property
    def short(self) -> str:
        return self.digest[:12]

    def summary(self) -> dict[str, Any]:
        return {
            "revision": self.number,
            "digest": self.digest,
            "cause": self.cause,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _revision(row: Any) -> AgentRevision:
    return AgentRevision(
        agent=row.agent,
        digest=row.digest,
        number=row.number,
        document=row.document,
        base_dir=row.base_dir,
        cause=row.cause,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class RevisionStore:
    def __init__(self, store: Store, *, history_limit: int = HISTORY_LIMIT) -> None:
        self._store = store
        self._limit = history_limit

    async def adopt(
        self, agent: str, manifest_digest: str, document: dict[str, Any], base_dir: str | None, *, now: float
    ) -> AgentRevision | None:
        """Make an applied manifest the agent's newest revision, unless this manifest was adopted before
        (then None: an undo since stays in force)."""
        async with self._store.engine.begin() as conn:
            seen = (
                await conn.execute(
                    select(agent_rollouts.c.manifest_digest).where(agent_rollouts.c.agent == agent)
                )
            ).scalar()
            if seen == manifest_digest:
                return None
            if seen is None:
                await conn.execute(
                    insert(agent_rollouts).values(
                        agent=agent, manifest_digest=manifest_digest, updated_at=now
                    )
                )
            else:
                await conn.execute(
                    update(agent_rollouts)
                    .where(agent_rollouts.c.agent == agent)
                    .values(manifest_digest=manifest_digest, updated_at=now)
                )
        return await self.record(agent, document, base_dir, cause="apply", now=now)

    async def record(
        self, agent: str, document: dict[str, Any], base_dir: str | None, *, cause: Cause, now: float
    ) -> AgentRevision:
        """Make `document` the agent's newest revision (a no-op when it already is)."""
        address = spec_digest(document)
        async with self._store.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(agent_revisions.c.digest, agent_revisions.c.number).where(
                        agent_revisions.c.agent == agent
                    )
                )
            ).all()
            numbers = {r.digest: r.number for r in rows}
            top = max(numbers.values(), default=0)
            if numbers.get(address) == top and top > 0:
                row = (
                    await conn.execute(
                        select(agent_revisions).where(
                            agent_revisions.c.agent == agent, agent_revisions.c.digest == address
                        )
                    )
                ).one()
                return _revision(row)
            values = {"number": top + 1, "document": document, "base_dir": base_dir, "cause": cause}
            if address in numbers:
                await conn.execute(
                    update(agent_revisions)
                    .where(agent_revisions.c.agent == agent, agent_revisions.c.digest == address)
                    .values(**values, updated_at=now)
                )
            else:
                await conn.execute(
                    insert(agent_revisions).values(
                        agent=agent, digest=address, **values, created_at=now, updated_at=now
                    )
                )
            kept = sorted(numbers.values(), reverse=True)[: self._limit - 1]
            if len(numbers) >= self._limit and kept:
                await conn.execute(
                    delete(agent_revisions).where(
                        agent_revisions.c.agent == agent, agent_revisions.c.number < min(kept)
                    )
                )
            row = (
                await conn.execute(
                    select(agent_revisions).where(
                        agent_revisions.c.agent == agent, agent_revisions.c.digest == address
                    )
                )
            ).one()
        return _revision(row)

    async def history(self, agent: str) -> list[AgentRevision]:
        """The agent's revisions, oldest first (the last one is what should run)."""
        async with self._store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(agent_revisions)
                    .where(agent_revisions.c.agent == agent)
                    .order_by(agent_revisions.c.number)
                )
            ).all()
        return [_revision(r) for r in rows]

    async def current(self) -> dict[str, AgentRevision]:
        """Every agent's newest revision, in one query."""
        newest = (
            select(agent_revisions.c.agent, func.max(agent_revisions.c.number).label("top"))
            .group_by(agent_revisions.c.agent)
            .subquery()
        )
        query = select(agent_revisions).join(
            newest, (agent_revisions.c.agent == newest.c.agent) & (agent_revisions.c.number == newest.c.top)
        )
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {r.agent: _revision(r) for r in rows}

    async def undo(self, agent: str, *, to: int | None = None, now: float) -> AgentRevision:
        """Run an earlier revision again: the one before the newest, or revision number `to`."""
        history = await self.history(agent)
        if not history:
            raise RevisionError(f"agent {agent!r} has no revisions (is it applied?)")
        newest = history[-1]
        if to is None:
            if len(history) < 2:
                raise RevisionError(
                    f"agent {agent!r} has only revision {newest.number}; there is nothing to undo to"
                )
            target = history[-2]
        else:
            found = [r for r in history if r.number == to]
            if not found:
                kept = ", ".join(str(r.number) for r in history)
                raise RevisionError(f"agent {agent!r} has no revision {to} (kept: {kept})")
            target = found[0]
            if target.number == newest.number:
                raise RevisionError(f"revision {to} of agent {agent!r} is already the newest")
        return await self.record(agent, target.document, target.base_dir, cause="undo", now=now)

    async def forget(self, agent: str) -> None:
        """The agent's manifest was deleted: a later apply of it is adopted again (history is kept)."""
        async with self._store.engine.begin() as conn:
            await conn.execute(delete(agent_rollouts).where(agent_rollouts.c.agent == agent))

    async def adopted(self) -> dict[str, str]:
        """The manifest digest each agent last adopted."""
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(select(agent_rollouts))).all()
        return {r.agent: r.manifest_digest for r in rows}
