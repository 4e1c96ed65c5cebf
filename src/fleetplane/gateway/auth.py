"""Virtual-key authentication: a presented secret → the tenant it stands for.

Keys are held in memory, indexed by the hash of their secret, and refreshed from the store in the
background; an unknown secret is looked up again in a read that begins after it arrived (so a key created a
moment ago works at once), and such reads happen at most once per `miss_refresh` seconds however many
unknown secrets arrive (a flood of bad keys cannot hammer the database; each waits up to that long).

When the store cannot be reached, known keys keep working from the index; an unknown one gets a 503
saying the key store is unreachable (it may be a key created since the last refresh), never a 500 and
never a wait longer than `timeout`.
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
        timeout: float = 5.0,
    ) -> None:
        self._repo = repo
        self._clock = clock
        self._refresh_every = refresh_every
        self._miss_refresh = miss_refresh
        self._timeout = timeout
        self._by_hash: dict[str, KeyRecord] = {}
        # When the last refresh attempt ended, and why it failed (None: it succeeded).
        self._attempted_at = float("-inf")
        self._read_started = float("-inf")  # when the last read of the key table began
        self._failure: str | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0  # reads of the whole key table, for operators and tests

    async def refresh(self) -> None:
        async with self._lock:
            await self._load()

    async def _load(self) -> None:
        """Read every key (the caller holds the lock); a store that does not answer in time is a failure."""
        self.refreshes += 1
        self._read_started = self._clock.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                records = await self._repo.all()
        except Exception as exc:
            self._attempted_at = self._clock.monotonic()
            self._failure = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise
        self._by_hash = {r.key_hash: r for r in records}
        self._attempted_at = self._clock.monotonic()
        self._failure = None

    def _recently_attempted(self) -> bool:
        return self._clock.monotonic() - self._attempted_at < self._miss_refresh

    def _unavailable(self) -> GatewayError:
        return GatewayError(
            "unavailable",
            "The virtual key store cannot be reached, so this key cannot be checked; try again shortly.",
            code="key_store_unavailable",
            retry_after=self._miss_refresh,
        )

    async def _lookup_after_refresh(self, digest: str) -> KeyRecord | None:
        """The record for an unknown secret, from a read of the key table that began after this request
        arrived, so a key created a moment ago is never refused; reads are at most one per `miss_refresh`
        seconds however many unknown secrets arrive (a request waits for the next one, up to that long)."""
        arrived = self._clock.monotonic()
        async with self._lock:
            record = self._by_hash.get(digest)
            if record is not None:
                return record
            if self._failure is not None and self._recently_attempted():
                raise self._unavailable()  # the store just failed a read: do not queue behind another
            # A read that began after this request arrived has answered for it already.
            if self._read_started < arrived or self._failure is not None:
                wait = self._attempted_at + self._miss_refresh - self._clock.monotonic()
                if wait > 0:
                    await self._clock.sleep(wait)
                try:
                    await self._load()
                except Exception as exc:
                    log.warning("virtual key store unreachable (%s); unknown keys get 503", self._failure)
                    raise self._unavailable() from exc
        return self._by_hash.get(digest)

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
        if record is None:
            record = await self._lookup_after_refresh(digest)
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
