"""Virtual keys at rest: only a hash of each secret is stored; the plaintext is shown once."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update

from fleetplane.store.db import Store
from fleetplane.store.tables import virtual_keys

SECRET_PREFIX = "fp-"
MIN_SECRET_LENGTH = 20


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:10]


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    key_hash: str
    key_prefix: str
    organization: str
    team: str
    user: str | None
    customer: str | None
    agent: str | None
    models: tuple[str, ...]
    source: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None

    def active(self, now: float) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True)
class NewKey:
    """What creating a key needs besides the secret."""

    name: str
    organization: str
    team: str
    user: str | None = None
    customer: str | None = None
    agent: str | None = None
    models: Sequence[str] = field(default_factory=lambda: ("*",))
    source: str = "cli"
    expires_at: float | None = None


def _record(row: object) -> KeyRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return KeyRecord(
        id=m["id"],
        name=m["name"],
        key_hash=m["key_hash"],
        key_prefix=m["key_prefix"],
        organization=m["organization"],
        team=m["team"],
        user=m["user"],
        customer=m["customer"],
        agent=m["agent"],
        models=tuple(m["models"]),
        source=m["source"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
    )


class KeyRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, key: NewKey, *, secret: str, now: float) -> KeyRecord:
        values: dict[str, object] = {
            "id": uuid.uuid4().hex[:16],
            "name": key.name,
            "key_hash": hash_secret(secret),
            "key_prefix": display_prefix(secret),
            "organization": key.organization,
            "team": key.team,
            "user": key.user,
            "customer": key.customer,
            "agent": key.agent,
            "models": list(key.models),
            "source": key.source,
            "created_at": now,
            "expires_at": key.expires_at,
            "revoked_at": None,
        }
        async with self._store.engine.begin() as conn:
            await conn.execute(virtual_keys.insert().values(**values))
        return _record(_Row(values))

    async def update_identity(self, name: str, key: NewKey) -> None:
        """Change what an existing key stands for (a re-applied VirtualKey), keeping its secret."""
        async with self._store.engine.begin() as conn:
            await conn.execute(
                update(virtual_keys)
                .where(virtual_keys.c.name == name)
                .values(
                    organization=key.organization,
                    team=key.team,
                    user=key.user,
                    customer=key.customer,
                    agent=key.agent,
                    models=list(key.models),
                    expires_at=key.expires_at,
                    source=key.source,
                )
            )

    async def set_secret(self, name: str, secret: str, *, now: float) -> None:
        """Replace a key's secret (rotation): the old one stops working at once."""
        async with self._store.engine.begin() as conn:
            await conn.execute(
                update(virtual_keys)
                .where(virtual_keys.c.name == name)
                .values(key_hash=hash_secret(secret), key_prefix=display_prefix(secret), revoked_at=None)
            )

    async def get(self, name: str) -> KeyRecord | None:
        async with self._store.engine.connect() as conn:
            row = (await conn.execute(select(virtual_keys).where(virtual_keys.c.name == name))).first()
        return _record(row) if row else None

    async def find_by_secret(self, secret: str) -> KeyRecord | None:
        digest = hash_secret(secret)
        async with self._store.engine.connect() as conn:
            row = (await conn.execute(select(virtual_keys).where(virtual_keys.c.key_hash == digest))).first()
        return _record(row) if row else None

    async def all(self) -> list[KeyRecord]:
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(select(virtual_keys).order_by(virtual_keys.c.name))).all()
        return [_record(r) for r in rows]

    async def revoke(self, name: str, *, now: float) -> bool:
        async with self._store.engine.begin() as conn:
            result = await conn.execute(
                update(virtual_keys)
                .where(virtual_keys.c.name == name, virtual_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return bool(result.rowcount)

    async def delete(self, name: str) -> None:
        async with self._store.engine.begin() as conn:
            await conn.execute(virtual_keys.delete().where(virtual_keys.c.name == name))


class _Row:
    def __init__(self, values: dict[str, object]) -> None:
        self._mapping = values
