"""What serves each skill: the channel row (stable version, canary and its share, the rollback target,
a generation that grows with every change) and the history of promotions and rollbacks.

Changing a channel is a compare-and-set on its generation, so two promotions racing cannot both win; the
registry (`registry.py`) decides what to change, this module only reads and writes the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from fleetplane.skills.errors import SkillError
from fleetplane.store.db import Store
from fleetplane.store.skill_tables import skill_channels, skill_promotions


@dataclass(frozen=True)
class Channel:
    name: str
    version: str
    digest: str
    previous_version: str | None
    canary_version: str | None
    canary_percent: int
    generation: int
    updated_at: float
    updated_by: str


def _channel(row: Any) -> Channel:
    m = row._mapping
    return Channel(**{k: m[k] for k in Channel.__dataclass_fields__})


class ChannelStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def read(self, name: str) -> Channel | None:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(skill_channels).where(skill_channels.c.name == name))).first()
        return _channel(row) if row is not None else None

    async def all(self) -> dict[str, Channel]:
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(skill_channels))).all()
        return {c.name: c for c in map(_channel, rows)}

    async def history(self, name: str) -> list[dict[str, Any]]:
        query = (
            select(skill_promotions).where(skill_promotions.c.name == name).order_by(skill_promotions.c.id)
        )
        async with self.store.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]

    async def write(
        self, name: str, before: Channel | None, values: Mapping[str, Any], now: float, actor: str
    ) -> None:
        stamp = {"updated_at": now, "updated_by": actor}
        async with self.store.engine.begin() as conn:
            if before is None:
                await conn.execute(skill_channels.insert().values(name=name, generation=1, **values, **stamp))
                return
            # Compare-and-set on the generation: two promotions racing cannot both win.
            moved = await conn.execute(
                update(skill_channels)
                .where(skill_channels.c.name == name, skill_channels.c.generation == before.generation)
                .values(generation=before.generation + 1, **values, **stamp)
            )
            if not moved.rowcount:
                raise SkillError(
                    "invalid", f"{name} was promoted or rolled back by someone else meanwhile: try again"
                )

    async def record(
        self, name: str, action: str, version: str, from_version: str | None, percent: int, reason: str,
        at: float, actor: str,
    ) -> None:  # fmt: skip
        async with self.store.engine.begin() as conn:
            await conn.execute(
                skill_promotions.insert().values(
                    name=name, action=action, version=version, from_version=from_version,
                    canary_percent=percent, reason=reason[:1024], at=at, actor=actor,
                )
            )  # fmt: skip
