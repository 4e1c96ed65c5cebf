"""Small SQL helpers both dialects need: insert-if-absent (a replayed write must change nothing), and
insert-or-touch (content-addressed rows that retention must not drop while a writer is reusing them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_ignore(conn: AsyncConnection, table: Table, values: Mapping[str, Any]) -> bool:
    """Insert a row unless one with the same key exists; True when this call inserted it."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing()
    result = await conn.execute(statement)
    return bool(result.rowcount)


async def insert_or_touch(
    conn: AsyncConnection, table: Table, values: Mapping[str, Any], *, key: str, touched: str
) -> None:
    """Insert a row, or when one with the same `key` exists move its `touched` column forward to this row's
    value. The update locks the existing row, so a concurrent retention delete filtering on `touched` either
    runs first (and this inserts afresh) or sees the new value and keeps the row."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values)
    newer = func.max if conn.dialect.name == "sqlite" else func.greatest
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[key]],
        set_={touched: newer(table.c[touched], statement.excluded[touched])},
    )
    await conn.execute(statement)
