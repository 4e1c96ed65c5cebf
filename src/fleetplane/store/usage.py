"""The usage ledger: one row per gateway request, written in batches off the hot path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from fleetplane.store.db import Store
from fleetplane.store.tables import usage_records


@dataclass
class UsageRecord:
    request_id: str
    created_at: float
    api: str
    status: int
    stream: bool
    usage_source: str
    key_id: str | None = None
    organization: str | None = None
    team: str | None = None
    user: str | None = None
    customer: str | None = None
    agent: str | None = None
    model: str | None = None
    provider: str | None = None
    deployment_model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_ms: float | None = None
    ttft_ms: float | None = None
    attempts: int = 0
    fallback: bool = False
    cache_hit: bool = False
    client_disconnected: bool = False
    error_type: str | None = None


class UsageRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def insert_many(self, records: Sequence[UsageRecord]) -> None:
        """Insert a batch in one statement; a request id already recorded is skipped (idempotent)."""
        if not records:
            return
        # The records are flat: their __dict__ is the row (asdict deep-copies, at ~27 µs a record).
        rows = [dict(vars(r)) for r in records]
        dialect_insert = pg_insert if self._store.dialect == "postgresql" else sqlite_insert
        statement = dialect_insert(usage_records).on_conflict_do_nothing(index_elements=["request_id"])
        async with self._store.engine.begin() as conn:
            await conn.execute(statement, rows)

    async def get(self, request_id: str) -> UsageRecord | None:
        async with self._store.engine.connect() as conn:
            row = (
                await conn.execute(select(usage_records).where(usage_records.c.request_id == request_id))
            ).first()
        if row is None:
            return None
        values = dict(row._mapping)
        values.pop("id")
        values["cost_usd"] = Decimal(str(values["cost_usd"]))
        return UsageRecord(**values)

    async def totals(self, group_by: Sequence[str], *, since: float | None = None) -> list[dict[str, Any]]:
        """Requests, tokens and dollars summed per group (e.g. ["team", "agent", "model"])."""
        columns = [usage_records.c[name] for name in group_by]
        query = select(
            *columns,
            func.count().label("requests"),
            func.coalesce(func.sum(usage_records.c.input_tokens), 0).label("input_tokens"),
            func.coalesce(func.sum(usage_records.c.output_tokens), 0).label("output_tokens"),
            func.coalesce(func.sum(usage_records.c.cost_usd), 0).label("cost_usd"),
        ).group_by(*columns)
        if since is not None:
            query = query.where(usage_records.c.created_at >= since)
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(*columns))).all()
        return [dict(r._mapping) for r in rows]
