"""Forwarding what the OTLP receiver accepted to another OTLP/HTTP endpoint, as it was received.

The endpoint is the standard exporter configuration: `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL, to
which `/v1/traces`, `/v1/metrics` and `/v1/logs` are appended) or a signal's own
`OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT` (used as given); headers from
`OTEL_EXPORTER_OTLP[_SIGNAL]_HEADERS` (`key=value,...`, URL-encoded) and the timeout from
`OTEL_EXPORTER_OTLP[_SIGNAL]_TIMEOUT` (milliseconds).

A request is never held up by forwarding: bodies wait in a bounded queue (by count and bytes; what
does not fit is dropped and counted) and one task sends them in order, retrying a 429, 502, 503, 504
or a connection failure with exponential back-off (a Retry-After honoured, up to the cap) a bounded
number of times. The gateway's own spans are not forwarded here: its OTLP exporter sends them itself.

Every forwarded request names this process (`x-fleetplane-forwarded-by`), so an endpoint that points
back at the same server (an easy mistake when the variable is set for a whole host) does not loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import httpx

log = logging.getLogger("fleetplane.telemetry")

SIGNALS = ("traces", "metrics", "logs")
FORWARDED_BY = "x-fleetplane-forwarded-by"
RETRYABLE = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class ForwardTarget:
    url: str
    headers: Mapping[str, str]
    timeout: float  # seconds


@dataclass(frozen=True)
class Payload:
    signal: str
    body: bytes
    content_type: str
    content_encoding: str | None


def forward_targets(environ: Mapping[str, str]) -> dict[str, ForwardTarget]:
    """Where each signal is forwarded, from the OTEL_EXPORTER_OTLP_* variables; empty when unset."""
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    targets: dict[str, ForwardTarget] = {}
    for signal in SIGNALS:
        own = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
        url = own or (f"{base.rstrip('/')}/v1/{signal}" if base else "")
        if not url:
            continue
        headers = parse_headers(environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
        headers.update(parse_headers(environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_HEADERS", "")))
        timeout = _timeout(
            environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_TIMEOUT")
            or environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
        )
        targets[signal] = ForwardTarget(url, headers, timeout)
    return targets


def parse_headers(text: str) -> dict[str, str]:
    """`k1=v1,k2=v2` with URL-encoded values, as the OTLP exporter variables write headers."""
    headers: dict[str, str] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            headers[unquote(name.strip()).lower()] = unquote(value.strip())
        elif item.strip():
            log.warning("OTLP forwarding: ignoring header %r (expected key=value)", item.strip())
    return headers


def _timeout(milliseconds: str | None) -> float:
    try:
        value = float(milliseconds) / 1000 if milliseconds else DEFAULT_TIMEOUT
    except ValueError:
        log.warning(
            "OTLP forwarding: timeout %r is not milliseconds; using %ss", milliseconds, DEFAULT_TIMEOUT
        )
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


class Forwarder:
    def __init__(
        self,
        targets: Mapping[str, ForwardTarget],
        *,
        max_pending: int = 2000,
        max_bytes: int = 64 * 1024 * 1024,
        max_attempts: int = 6,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.targets = dict(targets)
        self.instance_id = uuid.uuid4().hex
        self._queue: deque[Payload] = deque()
        self._bytes = 0
        self._max_pending = max_pending
        self._max_bytes = max_bytes
        self._max_attempts = max_attempts
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._client = client
        self._owns_client = client is None
        self._sleep = sleep
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.forwarded = 0
        self.dropped = 0  # never sent: no room in the queue, or left at shutdown
        self.failed = 0  # refused by the endpoint, or still failing after every retry

    def forwards(self, signal: str) -> bool:
        return signal in self.targets

    @property
    def pending(self) -> int:
        return len(self._queue)

    def submit(self, signal: str, body: bytes, content_type: str, content_encoding: str | None) -> bool:
        """Queue a body to forward; False (and counted as dropped) when the queue has no room."""
        if signal not in self.targets:
            return False
        if len(self._queue) >= self._max_pending or self._bytes + len(body) > self._max_bytes:
            self.dropped += 1
            log.warning(
                "OTLP forwarding: queue full, a %s request was dropped (%d in all)", signal, self.dropped
            )
            return False
        self._queue.append(Payload(signal, body, content_type, content_encoding))
        self._bytes += len(body)
        if self._wake is not None:
            self._wake.set()
        return True

    async def start(self) -> None:
        if self._task is not None or not self.targets:
            return
        if self._client is None:
            self._client = httpx.AsyncClient()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self.run(), name="fleetplane-otlp-forwarder")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop retrying; give what is queued one try each within `timeout`, then drop the rest."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain_once(), timeout)
        if self._queue:
            self.dropped += len(self._queue)
            log.warning("OTLP forwarding: %d requests not forwarded at shutdown", len(self._queue))
            self._queue.clear()
            self._bytes = 0
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
        self._wake = None

    async def run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            payload = self._queue[0]
            await self._deliver(payload)
            self._pop()

    def _pop(self) -> None:
        payload = self._queue.popleft()
        self._bytes -= len(payload.body)

    async def _drain_once(self) -> None:
        while self._queue:
            payload = self._queue[0]
            outcome = await self._send(payload)
            if outcome is None:
                self.forwarded += 1
            else:
                self.failed += 1
            self._pop()

    async def _deliver(self, payload: Payload) -> None:
        for attempt in range(self._max_attempts):
            outcome = await self._send(payload)
            if outcome is None:
                self.forwarded += 1
                return
            retry, wait, reason = outcome
            if not retry or attempt == self._max_attempts - 1:
                self.failed += 1
                log.warning("OTLP forwarding: a %s request was not forwarded: %s", payload.signal, reason)
                return
            await self._sleep(self.backoff(attempt, wait))

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential with jitter (half to all of the step), never shorter than a Retry-After; capped."""
        step = min(self._max_backoff, self._initial_backoff * 2**attempt)
        delay = step * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self._max_backoff)

    async def _send(self, payload: Payload) -> tuple[bool, float | None, str] | None:
        """None when the endpoint took it, else (retryable, retry-after seconds, reason)."""
        target = self.targets[payload.signal]
        assert self._client is not None
        headers = {**target.headers, "content-type": payload.content_type, FORWARDED_BY: self.instance_id}
        if payload.content_encoding:
            headers["content-encoding"] = payload.content_encoding
        try:
            response = await self._client.post(
                target.url, content=payload.body, headers=headers, timeout=target.timeout
            )
        except httpx.HTTPError as exc:
            return True, None, f"{target.url}: {type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        reason = f"{target.url} answered {response.status_code}"
        return response.status_code in RETRYABLE, _retry_after(response.headers.get("retry-after")), reason


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None  # an HTTP date: the exponential back-off stands
    return seconds if seconds is not None and seconds >= 0 else None
