"""Ids as a person types them: lists print ids that a narrow terminal cuts (`ec6bd70…`), so a command
that takes a run, approval or review item id also takes a unique prefix of it, as git takes a short hash."""

from __future__ import annotations

from sqlalchemy import Column, select

from fleetplane.cli.common import fail
from fleetplane.store.db import Store

MIN_PREFIX = 4


async def resolve_id(store: Store, column: Column[str], ref: str, what: str) -> str:
    """The id `ref` is, or begins; `ref` itself when nothing matches (the caller says it does not exist).
    An ambiguous prefix ends the command (exit 2) naming the ids it matches."""
    async with store.engine.connect() as conn:
        if (await conn.execute(select(column).where(column == ref))).first() is not None:
            return ref
        if len(ref) < MIN_PREFIX:
            return ref
        query = select(column).where(column.startswith(ref, autoescape=True)).order_by(column).limit(3)
        found = [row[0] for row in (await conn.execute(query)).all()]
    if len(found) > 1:
        shown = ", ".join(found[:2]) + (", ..." if len(found) > 2 else "")
        fail(f"{what} id {ref!r} is ambiguous: it begins {shown}; give more of it")
    return found[0] if found else ref
