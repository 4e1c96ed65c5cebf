"""Provider-style rate limits: token buckets refilled continuously over a minute, and their headers.

Both providers describe their limits this way: capacity comes back continuously rather than at a fixed
window edge, `reset` is the time until the bucket is full again, and a refused request consumes nothing.
The simulator knows a reply's length before it answers, so a request is charged its input plus its exact
output at admission. All arithmetic reads an injected `Clock`, so tests move time by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from fleetplane.sim.config import Limits
from fleetplane.state.clock import Clock

PERIOD_S = 60.0


class Bucket:
    __slots__ = ("_clock", "_level", "_updated", "capacity", "rate")

    def __init__(self, capacity: int, clock: Clock) -> None:
        self.capacity = capacity
        self.rate = capacity / PERIOD_S
        self._clock = clock
        self._level = float(capacity)
        self._updated = clock.monotonic()

    def _refill(self) -> float:
        now = self._clock.monotonic()
        if now > self._updated:
            self._level = min(float(self.capacity), self._level + (now - self._updated) * self.rate)
            self._updated = now
        return self._level

    def remaining(self) -> int:
        return max(0, math.floor(self._refill() + 1e-9))

    def wait_for(self, amount: int) -> float:
        """Seconds until `amount` fits (callers refuse amounts larger than the whole bucket first)."""
        level = self._refill()
        return 0.0 if level + 1e-9 >= amount else (amount - level) / self.rate

    def until_full(self) -> float:
        return (self.capacity - self._refill()) / self.rate

    def take(self, amount: int) -> None:
        self._refill()
        self._level -= amount

    def reset(self) -> None:
        self._level = float(self.capacity)
        self._updated = self._clock.monotonic()


@dataclass(frozen=True, slots=True)
class Denial:
    limit: str  # "requests", "tokens", "input_tokens" or "output_tokens"
    capacity: int
    requested: int
    retry_after_s: float
    # Larger than the whole bucket: it will never fit, as OpenAI's "Request too large" says.
    too_large: bool = False

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.retry_after_s))


class ModelLimiter:
    """The buckets of one model; unset limits have no bucket and never refuse."""

    def __init__(self, limits: Limits, clock: Clock) -> None:
        self.clock = clock
        self.requests = Bucket(limits.rpm, clock) if limits.rpm else None
        self.tokens = Bucket(limits.tpm, clock) if limits.tpm else None
        self.input_tokens = Bucket(limits.input_tpm, clock) if limits.input_tpm else None
        self.output_tokens = Bucket(limits.output_tpm, clock) if limits.output_tpm else None
        self.enabled = any((self.requests, self.tokens, self.input_tokens, self.output_tokens))

    def admit(self, input_tokens: int, output_tokens: int) -> Denial | None:
        """Charge one request to every bucket at once, or to none of them and say which bucket refused."""
        if not self.enabled:
            return None
        charges = (
            ("requests", self.requests, 1),
            ("tokens", self.tokens, input_tokens + output_tokens),
            ("input_tokens", self.input_tokens, input_tokens),
            ("output_tokens", self.output_tokens, output_tokens),
        )
        for name, bucket, amount in charges:
            if bucket is None:
                continue
            if amount > bucket.capacity:
                return Denial(name, bucket.capacity, amount, bucket.until_full(), too_large=True)
            wait = bucket.wait_for(amount)
            if wait > 0:
                return Denial(name, bucket.capacity, amount, wait)
        for _, bucket, amount in charges:
            if bucket is not None:
                bucket.take(amount)
        return None

    def reset(self) -> None:
        for bucket in (self.requests, self.tokens, self.input_tokens, self.output_tokens):
            if bucket is not None:
                bucket.reset()

    def _tightest(self, *buckets: Bucket | None) -> Bucket | None:
        present = [b for b in buckets if b is not None]
        return min(present, key=lambda b: b.remaining() / b.capacity) if present else None

    def openai_headers(self) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        tokens = self.tokens or self._tightest(self.input_tokens, self.output_tokens)
        for name, bucket in (("requests", self.requests), ("tokens", tokens)):
            if bucket is not None:
                headers += [
                    (b"x-ratelimit-limit-" + name.encode(), str(bucket.capacity).encode()),
                    (b"x-ratelimit-remaining-" + name.encode(), str(bucket.remaining()).encode()),
                    (b"x-ratelimit-reset-" + name.encode(), go_duration(bucket.until_full()).encode()),
                ]
        return headers

    def anthropic_headers(self) -> list[tuple[bytes, bytes]]:
        groups = (
            ("requests", self.requests),
            ("tokens", self._tightest(self.tokens, self.input_tokens, self.output_tokens)),
            ("input-tokens", self.input_tokens or self.tokens),
            ("output-tokens", self.output_tokens or self.tokens),
        )
        headers: list[tuple[bytes, bytes]] = []
        now = self.clock.now()
        for name, bucket in groups:
            if bucket is not None:
                prefix = b"anthropic-ratelimit-" + name.encode()
                headers += [
                    (prefix + b"-limit", str(bucket.capacity).encode()),
                    (prefix + b"-remaining", str(bucket.remaining()).encode()),
                    (prefix + b"-reset", rfc3339(now + bucket.until_full()).encode()),
                ]
        return headers


def go_duration(seconds: float) -> str:
    """A duration the way OpenAI writes it (Go's format): `20ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`."""
    millis = math.ceil(seconds * 1000 - 1e-6)
    if millis <= 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def rfc3339(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(math.ceil(epoch_seconds), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
