"""The reasoning trace of a run: why it went the way it did, recorded as it happens.

Router decisions with their rationale, conditions with the values they read, model calls, tool calls
(and refusals), guardrail verdicts. Content is redacted like the journal's (secrets always, personal data
by default). Each record has a key that names the point it was made at, so a resume that passes the same
point again records nothing twice; `fleetplane runs show` prints them in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from fleetplane.pipelines.sql import insert_ignore
from fleetplane.store.db import Store
from fleetplane.store.tables import pipeline_trace
from fleetplane.telemetry.content import ContentPolicy, redact_personal_data

# A reasoning record is for people to read; long values are cut (the journal keeps outputs whole).
_MAX_CHARS = 4096


@dataclass(frozen=True)
class Record:
    at: float
    kind: str
    step_key: str | None
    data: dict[str, Any]


class Reasoning:
    def __init__(self, store: Store, run_id: str, *, redact: bool = True) -> None:
        self._store = store
        self.run_id = run_id
        self.policy = ContentPolicy(redactor=redact_personal_data if redact else None, max_chars=_MAX_CHARS)

    async def record(
        self, key: str, kind: str, data: Mapping[str, Any], *, now: float, step_key: str | None = None
    ) -> None:
        values = {
            "run_id": self.run_id,
            "key": key[:512],
            "at": now,
            "kind": kind,
            "step_key": step_key,
            "data": self.policy.clean(dict(data)),
        }
        async with self._store.engine.begin() as conn:
            await insert_ignore(conn, pipeline_trace, values)


async def records(store: Store, run_id: str) -> list[Record]:
    query = select(pipeline_trace).where(pipeline_trace.c.run_id == run_id).order_by(pipeline_trace.c.id)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [Record(r.at, r.kind, r.step_key, dict(r.data)) for r in rows]
