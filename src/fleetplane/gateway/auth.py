"""Virtual-key authentication: a presented secret → the tenant it stands for.

Keys are held in memory, indexed by the hash of their secret, and refreshed from the store in the
background; an unknown secret triggers at most one extra refresh per `miss_refresh` seconds, so a key
created a moment ago works at once and a flood of bad keys cannot hammer the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from fleetplane.gateway.errors import GatewayError
from fleetplane.gateway.tenant import Tenant
from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.store.keys import KeyRecord, KeyRepository, hash_secret

log = logging.getLogger("fleetplane.gateway")


def presented_secret(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class KeyIndex:
    def __init__(
        self,
        repo: KeyRepository,
        *,
        clock: Clock = SYSTEM_CLOCK,
        refresh_every: float = 5.0,
        miss_refresh: float = 1.0,
    ) -> None:
        self._repo = repo
        self._clock = clock
        self._refresh_every = refresh_every
        self._miss_refresh = miss_refresh
        self._by_hash: dict[str, KeyRecord] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            records = await self._repo.all()
            self._by_hash = {r.key_hash: r for r in records}
            self._loaded_at = self._clock.monotonic()

    async def run(self) -> None:
        """Refresh forever (a background task of the server)."""
        while True:
            await self._clock.sleep(self._refresh_every)
            try:
                await self.refresh()
            except Exception as exc:  # the store may be briefly away; keep serving the last index
                log.warning("could not refresh virtual keys: %s", exc)

    async def authenticate(self, headers: Mapping[str, str]) -> Tenant:
        secret = presented_secret(headers)
        if secret is None:
            raise GatewayError(
                "authentication",
                "No API key: send a fleetplane virtual key as 'Authorization: Bearer <key>' "
                "or 'x-api-key: <key>'.",
                code="missing_api_key",
            )
        digest = hash_secret(secret)
        record = self._by_hash.get(digest)
        if record is None and self._clock.monotonic() - self._loaded_at >= self._miss_refresh:
            await self.refresh()
            record = self._by_hash.get(digest)
        if record is None:
            raise GatewayError(
                "authentication",
                "Invalid API key: no fleetplane virtual key matches it.",
                code="invalid_api_key",
            )
        now = self._clock.now()
        if record.revoked_at is not None and record.revoked_at <= now:
            raise GatewayError(
                "authentication", f"API key {record.name!r} has been revoked.", code="key_revoked"
            )
        if record.expires_at is not None and record.expires_at <= now:
            raise GatewayError("authentication", f"API key {record.name!r} has expired.", code="key_expired")
        return Tenant(
            key_id=record.id,
            key_name=record.name,
            organization=record.organization,
            team=record.team,
            user=record.user,
            customer=record.customer,
            agent=record.agent,
            models=record.models,
        )
