"""One pooled aiohttp session per provider, so each provider's connection limit is its own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from fleetplane.gateway.config import ProviderRuntime
from fleetplane.state.clock import SYSTEM_CLOCK, Clock


@dataclass(frozen=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


class UpstreamPool:
    def __init__(self) -> None:
        self._sessions: dict[tuple[str, int], aiohttp.ClientSession] = {}

    def session(self, provider: ProviderRuntime) -> aiohttp.ClientSession:
        key = (provider.name, provider.max_connections)
        session = self._sessions.get(key)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=provider.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
            )
            session = aiohttp.ClientSession(
                connector=connector,
                # Responses are read as bytes and parsed once with orjson by the gateway.
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
            self._sessions[key] = session
        return session

    async def send(
        self, provider: ProviderRuntime, request: UpstreamRequest, *, timeout: float
    ) -> aiohttp.ClientResponse:
        """Send and return once the status line and headers arrive; the body is the caller's to read."""
        client_timeout = aiohttp.ClientTimeout(
            total=None, connect=min(provider.connect_timeout, timeout), sock_read=provider.read_timeout
        )
        session = self.session(provider)
        async with asyncio.timeout(timeout):
            return await session.post(
                request.url, data=request.body, headers=request.headers, timeout=client_timeout
            )

    async def close(self) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
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


def retry_after_seconds(headers: Any, *, clock: Clock = SYSTEM_CLOCK) -> float | None:
    """`retry-after` (seconds or an HTTP date) or OpenAI's `retry-after-ms`, as seconds from now."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - clock.now())
    except (TypeError, ValueError):
        return None
