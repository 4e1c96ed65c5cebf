"""One pooled aiohttp session per provider, and the gateway's own count of connections in use.

Each provider has `maxConnections` slots. A request holds a slot from before it connects until its
response is closed (for a stream: until the stream ends), so a full pool is known to the gateway — it
is the gateway's own saturation, never mistaken for a slow upstream, and never cools a deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from fleetplane.gateway.config import ProviderRuntime
from fleetplane.state.clock import SYSTEM_CLOCK, Clock

# The longest rest an upstream may ask for; a `retry-after` beyond it is taken as this.
MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Held:
    """A response and the connection slot it occupies; `release` gives both back (once)."""

    response: aiohttp.ClientResponse
    _slot: asyncio.Semaphore
    _released: bool = field(default=False)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self.response.close()
        self._slot.release()


@dataclass
class _Provider:
    session: aiohttp.ClientSession
    slots: asyncio.Semaphore
    max_connections: int


class UpstreamPool:
    def __init__(self) -> None:
        self._providers: dict[str, _Provider] = {}
        self._retired: list[aiohttp.ClientSession] = []

    def _provider(self, provider: ProviderRuntime) -> _Provider:
        current = self._providers.get(provider.name)
        if (
            current is not None
            and not current.session.closed
            and current.max_connections == provider.max_connections
        ):
            return current
        if current is not None:
            # The provider's settings changed: requests still on the old session finish on it.
            self._retired.append(current.session)
        connector = aiohttp.TCPConnector(
            limit=provider.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )
        fresh = _Provider(session, asyncio.Semaphore(provider.max_connections), provider.max_connections)
        self._providers[provider.name] = fresh
        return fresh

    async def acquire(self, provider: ProviderRuntime) -> asyncio.Semaphore:
        """Wait for one of the provider's connection slots; the caller bounds the wait."""
        slots = self._provider(provider).slots
        await slots.acquire()
        return slots

    async def send(
        self, provider: ProviderRuntime, slot: asyncio.Semaphore, request: UpstreamRequest
    ) -> Held:
        """Send on a slot from `acquire`; return once the status line and headers arrive. The slot is
        released with the response, or now if sending fails."""
        session = self._provider(provider).session
        try:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=provider.connect_timeout)
            response = await session.post(
                request.url, data=request.body, headers=request.headers, timeout=timeout
            )
        except BaseException:
            slot.release()
            raise
        return Held(response, slot)

    async def close(self) -> None:
        sessions = [state.session for state in self._providers.values()] + self._retired
        self._providers.clear()
        self._retired.clear()
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.close()


def build_headers(provider: ProviderRuntime, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json", **provider.headers}
    if provider.api_key:
        if provider.auth_header == "authorization":
            headers["authorization"] = f"Bearer {provider.api_key}"
        else:
            headers[provider.auth_header] = provider.api_key
    if extra:
        headers.update(extra)
    return headers


def _sane(seconds: float) -> float | None:
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def retry_after_seconds(headers: Any, *, clock: Clock = SYSTEM_CLOCK) -> float | None:
    """`retry-after` (seconds or an HTTP date) or `retry-after-ms`, as seconds from now, capped; a value
    that is not a finite number is ignored."""
    ms = headers.get("retry-after-ms")
    if ms:
        with contextlib.suppress(ValueError):
            value = _sane(float(ms) / 1000)
            if value is not None:
                return value
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return _sane(float(raw))
    except ValueError:
        pass
    try:
        return _sane(parsedate_to_datetime(raw).timestamp() - clock.now())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
