"""The audit log: an append-only, hash-chained record of what changed who could do what — skill
publishes and promotions, approvals, guardrail blocks, policy changes.

Each entry's hash is sha256 over its sequence number, time, kind, subject, actor, details (canonical JSON)
and the previous entry's hash; the first entry chains to 64 zeros. `verify` recomputes the chain: an edited
entry breaks its own hash, a removed one breaks the sequence and the next entry's link, so both are found
and named. Appends are serialised by the database (the sequence number is the primary key: two appenders
racing for the same number cannot both succeed; the loser retries on the new head).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from fleetplane.store.db import Store
from fleetplane.store.tables import audit_head, audit_log

GENESIS = "0" * 64
_APPEND_TRIES = 20


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    kind: str
    subject: str
    actor: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    problem: str | None = None  # what is wrong, naming the entry
    seq: int | None = None  # the first entry found wrong


def entry_hash(
    seq: int, at: float, kind: str, subject: str, actor: str, details: Mapping[str, Any], prev: str
) -> str:
    canonical = orjson.dumps(
        {"seq": seq, "at": repr(float(at)), "kind": kind, "subject": subject, "actor": actor,
         "details": details, "prev": prev},
        option=orjson.OPT_SORT_KEYS,
    )  # fmt: skip
    return hashlib.sha256(canonical).hexdigest()


def _entry(row: Any) -> AuditEntry:
    m = row._mapping
    return AuditEntry(
        m["seq"], m["at"], m["kind"], m["subject"], m["actor"], dict(m["details"]), m["prev_hash"], m["hash"]
    )


class AuditLog:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def append(
        self, kind: str, subject: str, *, actor: str, details: Mapping[str, Any] | None = None, at: float
    ) -> AuditEntry:
        body = dict(details or {})
        # Round-trip the details through JSON now, so the hash covers exactly what the database returns.
        body = orjson.loads(orjson.dumps(body, default=str))
        for _ in range(_APPEND_TRIES):
            async with self._store.engine.begin() as conn:
                head = (
                    await conn.execute(
                        select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
                    )
                ).first()
                seq, prev = (head.seq + 1, head.hash) if head is not None else (1, GENESIS)
                digest = entry_hash(seq, at, kind, subject, actor, body, prev)
                try:
                    await conn.execute(
                        audit_log.insert().values(
                            seq=seq,
                            at=at,
                            kind=kind,
                            subject=subject,
                            actor=actor,
                            details=body,
                            prev_hash=prev,
                            hash=digest,
                        )
                    )
                    moved = await conn.execute(
                        update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest)
                    )
                    if not moved.rowcount:
                        await conn.execute(audit_head.insert().values(id=1, seq=seq, hash=digest))
                except IntegrityError:
                    continue  # another appender took this number: chain onto the new head
            return AuditEntry(seq, at, kind, subject, actor, body, prev, digest)
        raise RuntimeError(f"could not append to the audit log after {_APPEND_TRIES} tries")

    async def entries(self, *, kind: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        query = select(audit_log).order_by(audit_log.c.seq)
        if kind is not None:
            query = query.where(audit_log.c.kind == kind)
        if limit is not None:
            query = query.limit(limit)
        async with self._store.engine.connect() as conn:
            return [_entry(row) for row in (await conn.execute(query)).all()]

    async def verify(self) -> Verification:
        expected_seq, prev = 1, GENESIS
        count = 0
        for entry in await self.entries():
            count += 1
            if entry.seq != expected_seq:
                return Verification(
                    False, count, f"entry {expected_seq} is missing (the next is {entry.seq})", expected_seq
                )
            if entry.prev_hash != prev:
                return Verification(
                    False, count, f"entry {entry.seq} does not chain to entry {entry.seq - 1}", entry.seq
                )
            digest = entry_hash(
                entry.seq, entry.at, entry.kind, entry.subject, entry.actor, entry.details, entry.prev_hash
            )
            if digest != entry.hash:
                return Verification(
                    False, count, f"entry {entry.seq} ({entry.kind} {entry.subject}) was altered", entry.seq
                )
            expected_seq, prev = entry.seq + 1, entry.hash
        async with self._store.engine.connect() as conn:
            head = (await conn.execute(select(audit_head.c.seq, audit_head.c.hash))).first()
        if head is not None and (head.seq != expected_seq - 1 or head.hash != prev):
            return Verification(
                False,
                count,
                f"entries after {expected_seq - 1} were removed (the head is entry {head.seq})",
                expected_seq,
            )
        if head is None and count:
            return Verification(False, count, "the audit log's head record is missing", None)
        return Verification(True, count)
