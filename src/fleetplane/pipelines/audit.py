"""The audit sink, always on: run starts and finishes, approvals, guardrail blocks, refused tools go to the
hash-chained `AuditLog`.

`once` appends an entry only if none of that kind and subject exists: a worker that dies after appending
and before recording that it did appends nothing twice when another worker resumes the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from fleetplane.store.audit import AuditLog
from fleetplane.store.db import Store
from fleetplane.store.tables import audit_log

ACTOR = "pipelines"


class AuditSink:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.log = AuditLog(store)

    async def once(
        self, kind: str, subject: str, details: Mapping[str, Any], *, now: float, actor: str = ACTOR
    ) -> None:
        query = (
            select(audit_log.c.seq).where(audit_log.c.kind == kind, audit_log.c.subject == subject).limit(1)
        )
        async with self._store.engine.connect() as conn:
            if (await conn.execute(query)).first() is not None:
                return
        await self.log.append(kind, subject, actor=actor, details=details, at=now)
