"""An open-loop load generator for OpenAI- and Anthropic-compatible endpoints (`fleetplane sim load`).

Requests leave on a fixed schedule, request i at `i / rate` seconds after the start, whether or not
earlier ones have finished. Latency is measured from that *scheduled* time, not from when the request
actually left: if the server (or this generator) stalls, the queue it builds shows up in the numbers
instead of silently lowering the offered rate ("coordinated omission"). Requests scheduled during the
warm-up are sent but not counted.

    result = run(LoadSpec(url="http://127.0.0.1:8700/v1", rate=200, duration=30, api_key="sk-..."))
    result.latency_ms.p99

Several URLs (`more_urls`, e.g. the replicas of one gateway) share the schedule round-robin: request i goes
to the (i mod n)-th, as a load balancer would send them.

The scheduling arithmetic and the percentiles are plain functions so they are tested without a clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import aiohttp
import orjson

Api = Literal["openai", "anthropic"]
Phase = Literal["warmup", "measure", "drain", "done"]

_FILLER = "the quick brown fox jumps over the lazy dog while agents queue for tokens "
# The end of a complete stream: OpenAI's terminator and Anthropic's last event. A stream cut before it is
# an error even though its status was 200.
_STREAM_END: dict[Api, bytes] = {"openai": b"[DONE]", "anthropic": b"message_stop"}


@dataclass(frozen=True)
class LoadSpec:
    url: str  # a base URL ("http://host:port" or ".../v1") or the full endpoint URL
    rate: float = 100.0  # requests per second, offered whatever the server does
    duration: float = 30.0  # measured seconds, after the warm-up
    warmup: float = 5.0  # seconds whose requests are sent but not counted
    api: Api = "openai"
    model: str = "sim-small"
    stream: bool = False
    message_chars: int = 200  # length of the user message's filler text
    directives: tuple[str, ...] = ()  # "key=value" pairs sent as one [[sim ...]] directive
    max_tokens: int | None = None  # Anthropic requires one; 1024 when unset
    api_key: str | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)  # merged into every request body
    unique: bool = False  # number each message so no two bodies are equal (defeats response caches)
    connections: int = 10_000  # pool size; an open loop needs one per request in flight
    timeout: float = 60.0  # per request, from its scheduled time; a timeout counts as an error
    # Further targets of the same kind (replicas of one gateway): request i goes to (url, *more_urls)[i % n].
    more_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be > 0")
        if self.duration <= 0 or self.warmup < 0:
            raise ValueError("duration must be > 0 and warmup >= 0")
        if self.connections < 1 or self.timeout <= 0:
            raise ValueError("connections must be >= 1 and timeout > 0")
        for pair in self.directives:
            if "=" not in pair or " " in pair:
                raise ValueError(f"a directive is key=value without spaces, got {pair!r}")


# -- the schedule ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """How many requests a run sends: the first `warmup` of `total` are not measured."""

    rate: float
    total: int
    warmup: int

    @property
    def measured(self) -> int:
        return self.total - self.warmup


def plan(rate: float, warmup: float, duration: float) -> Schedule:
    """Request i is due at i / rate; it is a warm-up request when that falls before `warmup` seconds."""
    # The epsilon keeps 0.1 * 30 style products that land a hair above an integer from adding a request.
    warm = math.ceil(warmup * rate - 1e-9)
    total = math.ceil((warmup + duration) * rate - 1e-9)
    return Schedule(rate=rate, total=max(total, warm + 1), warmup=warm)


def offset(index: int, rate: float) -> float:
    """Seconds after the start at which request `index` is due."""
    return index / rate


def due(elapsed: float, rate: float, total: int) -> int:
    """How many requests are due `elapsed` seconds after the start (request 0 is due at once)."""
    if elapsed < 0:
        return 0
    # The epsilon makes a request due at exactly its offset despite float rounding of index / rate.
    return min(total, math.floor(elapsed * rate + 1e-9) + 1)


# -- percentiles -------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile of ascending values: a value that was observed, never interpolated."""
    if not ordered:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within [0, 100]")
    rank = max(1, math.ceil(q / 100 * len(ordered) - 1e-9))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    """Milliseconds."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float


def summarize(seconds: Sequence[float]) -> Summary | None:
    if not seconds:
        return None
    ms = sorted(s * 1000 for s in seconds)
    return Summary(
        count=len(ms),
        mean=sum(ms) / len(ms),
        p50=percentile(ms, 50),
        p90=percentile(ms, 90),
        p99=percentile(ms, 99),
        max=ms[-1],
    )


# -- requests ----------------------------------------------------------------------------------------


def endpoint(url: str, api: Api) -> str:
    """The URL to POST to: a base URL gets the API's path; a full endpoint URL is kept."""
    path = "/chat/completions" if api == "openai" else "/messages"
    url = url.rstrip("/")
    if url.endswith(path):
        return url
    return url + path if url.endswith("/v1") else url + "/v1" + path


def message_text(spec: LoadSpec, index: int | None = None) -> str:
    text = (_FILLER * (spec.message_chars // len(_FILLER) + 1))[: spec.message_chars]
    if index is not None:
        text = f"request {index}: {text}"
    if spec.directives:
        text += " [[sim " + " ".join(spec.directives) + "]]"
    return text


def request_body(spec: LoadSpec, index: int | None = None) -> bytes:
    body: dict[str, Any] = {
        "model": spec.model,
        "messages": [{"role": "user", "content": message_text(spec, index)}],
    }
    if spec.api == "anthropic":
        body["max_tokens"] = spec.max_tokens or 1024
    elif spec.max_tokens is not None:
        body["max_tokens"] = spec.max_tokens
    if spec.stream:
        body["stream"] = True
    body.update(spec.extra_body)
    return orjson.dumps(body)


def request_headers(spec: LoadSpec) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if spec.api == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
        if spec.api_key:
            headers["x-api-key"] = spec.api_key
    elif spec.api_key:
        headers["authorization"] = f"Bearer {spec.api_key}"
    return headers


# -- the result --------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    spec: LoadSpec
    requests: int  # measured requests (scheduled after the warm-up)
    ok: int  # answered 2xx, streams complete
    errors: dict[str, int]  # by HTTP status, or "timeout" / "connection" / "truncated"
    offered_rate: float
    sent_rate: float  # how fast this generator actually sent the measured requests
    achieved_rate: float  # successful answers per second of the measured window
    latency_ms: Summary | None  # scheduled send -> last byte, successful requests only
    ttfb_ms: Summary | None  # scheduled send -> first body byte (streams only)
    send_lag_ms: Summary | None  # actual send - scheduled send: this generator's own lateness

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"]["api_key"] = "***" if self.spec.api_key else None
        return data


@dataclass
class Progress:
    phase: Phase
    elapsed: float
    sent: int
    finished: int
    errors: int
    total: int


@dataclass
class _Outcome:
    index: int
    scheduled: float
    sent: float
    ttfb: float | None
    finished: float
    error: str | None


class _Run:
    def __init__(self, spec: LoadSpec, on_phase: Callable[[Phase], None] | None) -> None:
        self.spec = spec
        self.schedule = plan(spec.rate, spec.warmup, spec.duration)
        self.urls = [endpoint(url, spec.api) for url in (spec.url, *spec.more_urls)]
        self.headers = request_headers(spec)
        self.body = request_body(spec)
        self.on_phase = on_phase
        self.outcomes: list[_Outcome] = []
        self.sent = 0
        self.errors = 0
        self.phase: Phase = "warmup"
        self.start = 0.0

    def _enter(self, phase: Phase) -> None:
        self.phase = phase
        if self.on_phase is not None:
            self.on_phase(phase)

    async def run(self, session: aiohttp.ClientSession) -> None:
        tasks: set[asyncio.Task[None]] = set()
        schedule = self.schedule
        # A short lead so the first requests are not late because the loop was busy starting up.
        self.start = time.perf_counter() + 0.02
        index = 0
        while index < schedule.total:
            now = time.perf_counter()
            for i in range(index, due(now - self.start, schedule.rate, schedule.total)):
                if i == schedule.warmup:
                    self._enter("measure")
                task = asyncio.create_task(self._one(session, i, self.start + offset(i, schedule.rate)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                index = i + 1
            if index < schedule.total:
                # Catching up in the loop above is what keeps the rate honest when a sleep overshoots.
                await asyncio.sleep(max(0.0, self.start + offset(index, schedule.rate) - time.perf_counter()))
        self._enter("drain")
        if tasks:
            await asyncio.wait(tasks)
        self._enter("done")

    async def _one(self, session: aiohttp.ClientSession, index: int, scheduled: float) -> None:
        spec = self.spec
        body = request_body(spec, index) if spec.unique else self.body
        sent = time.perf_counter()
        self.sent += 1
        ttfb: float | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(max(0.001, scheduled + spec.timeout - sent)):
                url = self.urls[index % len(self.urls)]
                async with session.post(url, data=body, headers=self.headers) as response:
                    if not 200 <= response.status < 300:
                        error = str(response.status)
                        await response.read()
                    elif spec.stream:
                        tail = b""
                        async for chunk in response.content.iter_any():
                            if ttfb is None:
                                ttfb = time.perf_counter()
                            tail = (tail + chunk)[-64:]
                        if _STREAM_END[spec.api] not in tail:
                            error = "truncated"
                    else:
                        await response.read()
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientPayloadError:
            error = "truncated"
        except (aiohttp.ClientError, OSError):
            error = "connection"
        if error is not None:
            self.errors += 1
        self.outcomes.append(_Outcome(index, scheduled, sent, ttfb, time.perf_counter(), error))

    def progress(self) -> Progress:
        return Progress(
            phase=self.phase,
            elapsed=max(0.0, time.perf_counter() - self.start),
            sent=self.sent,
            finished=len(self.outcomes),
            errors=self.errors,
            total=self.schedule.total,
        )

    def result(self) -> LoadResult:
        spec, schedule = self.spec, self.schedule
        measured = [o for o in self.outcomes if o.index >= schedule.warmup]
        good = [o for o in measured if o.error is None]
        errors: dict[str, int] = {}
        for o in measured:
            if o.error is not None:
                errors[o.error] = errors.get(o.error, 0) + 1
        window_start = self.start + offset(schedule.warmup, schedule.rate)
        window_end = max([window_start + spec.duration, *(o.finished for o in good)])
        sends = sorted(o.sent for o in measured)
        sent_span = sends[-1] - sends[0] if len(sends) > 1 else 0.0
        return LoadResult(
            spec=spec,
            requests=len(measured),
            ok=len(good),
            errors=dict(sorted(errors.items())),
            offered_rate=spec.rate,
            sent_rate=(len(sends) - 1) / sent_span if sent_span > 0 else 0.0,
            achieved_rate=len(good) / (window_end - window_start),
            latency_ms=summarize([o.finished - o.scheduled for o in good]),
            ttfb_ms=summarize([o.ttfb - o.scheduled for o in good if o.ttfb is not None]),
            send_lag_ms=summarize([o.sent - o.scheduled for o in measured]),
        )


async def run_load(
    spec: LoadSpec,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_phase: Callable[[Phase], None] | None = None,
    progress_interval: float = 0.25,
) -> LoadResult:
    """Run one load; `on_phase` is called as the measured window opens ("measure") and closes ("done")."""
    state = _Run(spec, on_phase)
    connector = aiohttp.TCPConnector(limit=spec.connections, limit_per_host=0, ttl_dns_cache=300)
    # trust_env stays off: the target is usually on this machine and must not go through a proxy.
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None)
    ) as session:
        ticker: asyncio.Task[None] | None = None
        if on_progress is not None:
            ticker = asyncio.create_task(_tick(state, on_progress, progress_interval))
        try:
            await state.run(session)
        finally:
            if ticker is not None:
                ticker.cancel()
    if on_progress is not None:
        on_progress(state.progress())
    return state.result()


async def _tick(state: _Run, on_progress: Callable[[Progress], None], interval: float) -> None:
    while True:
        on_progress(state.progress())
        await asyncio.sleep(interval)


def run(
    spec: LoadSpec,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_phase: Callable[[Phase], None] | None = None,
) -> LoadResult:
    """`run_load` on a fresh uvloop event loop (asyncio's own where uvloop is missing)."""
    work = run_load(spec, on_progress=on_progress, on_phase=on_phase)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)
