"""Applied manifests: the desired state the servers run, its revisions, and the generation counter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from fleetplane.store.db import Store
from fleetplane.store.tables import config_generation, manifest_revisions, manifests


@dataclass(frozen=True)
class AppliedDocument:
    kind: str
    name: str
    document: dict[str, Any]
    digest: str
    source: str | None
    generation: int
    applied_at: float


@dataclass(frozen=True)
class Upsert:
    kind: str
    name: str
    document: dict[str, Any]
    digest: str
    source: str | None


@dataclass(frozen=True)
class Revision:
    kind: str
    name: str
    digest: str
    document: dict[str, Any]
    generation: int
    applied_at: float
    deleted: bool


class AppliedRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def generation(self) -> int:
        async with self._store.engine.connect() as conn:
            value = (await conn.execute(select(config_generation.c.generation))).scalar()
        return int(value or 0)

    async def all(self) -> dict[tuple[str, str], AppliedDocument]:
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(select(manifests))).all()
        return {
            (r.kind, r.name): AppliedDocument(
                r.kind, r.name, r.document, r.digest, r.source, r.generation, r.applied_at
            )
            for r in rows
        }

    async def apply(
        self, upserts: Sequence[Upsert], deletes: Sequence[tuple[str, str]], *, now: float
    ) -> int:
        """Write every change in one transaction and bump the generation once; returns the new one."""
        async with self._store.engine.begin() as conn:
            bumped = await conn.execute(
                update(config_generation)
                .where(config_generation.c.id == 1)
                .values(generation=config_generation.c.generation + 1, updated_at=now)
                .returning(config_generation.c.generation)
            )
            generation = bumped.scalar()
            if generation is None:
                generation = 1
                await conn.execute(insert(config_generation).values(id=1, generation=1, updated_at=now))
            for u in upserts:
                await conn.execute(
                    delete(manifests).where(manifests.c.kind == u.kind, manifests.c.name == u.name)
                )
                await conn.execute(
                    insert(manifests).values(
                        kind=u.kind,
                        name=u.name,
                        document=u.document,
                        digest=u.digest,
                        source=u.source,
                        generation=generation,
                        applied_at=now,
                    )
                )
                await conn.execute(
                    insert(manifest_revisions).values(
                        kind=u.kind,
                        name=u.name,
                        digest=u.digest,
                        document=u.document,
                        generation=generation,
                        applied_at=now,
                        deleted=False,
                    )
                )
            for kind, name in deletes:
                gone = (
                    await conn.execute(
                        delete(manifests)
                        .where(manifests.c.kind == kind, manifests.c.name == name)
                        .returning(manifests.c.document, manifests.c.digest)
                    )
                ).first()
                if gone is not None:
                    await conn.execute(
                        insert(manifest_revisions).values(
                            kind=kind,
                            name=name,
                            digest=gone.digest,
                            document=gone.document,
                            generation=generation,
                            applied_at=now,
                            deleted=True,
                        )
                    )
        return int(generation)

    async def revisions(self, kind: str, name: str) -> list[Revision]:
        async with self._store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(manifest_revisions)
                    .where(manifest_revisions.c.kind == kind, manifest_revisions.c.name == name)
                    .order_by(manifest_revisions.c.id)
                )
            ).all()
        return [
            Revision(r.kind, r.name, r.digest, r.document, r.generation, r.applied_at, r.deleted)
            for r in rows
        ]
