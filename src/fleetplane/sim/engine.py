"""The path every chat request takes once its API module has parsed it, and the state it shares.

faults and directives → reply decided (seeded) → rate-limit admission → latency drawn → response or
stream. An API module supplies a `Dialect`: how its errors, headers, bodies and events look.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from fleetplane.sim.asgi import JSON, Request, send_json, send_partial, unless_disconnected
from fleetplane.sim.completion import ChatRequest, Choice, build_choices
from fleetplane.sim.config import ModelConfig, SimConfig
from fleetplane.sim.directives import Directives
from fleetplane.sim.errors import SimError, error_for_status
from fleetplane.sim.faults import Action, FaultBoard
from fleetplane.sim.ratelimit import Denial, ModelLimiter
from fleetplane.sim.stats import UNROUTED, ModelStats, Stats
from fleetplane.sim.stream import Pace, StreamScript, play
from fleetplane.state.clock import Clock

Header = tuple[bytes, bytes]
# nginx's "client closed request": the client gave up before the reply was ready.
CLIENT_CLOSED = 499


class Dialect(Protocol):
    def render_error(self, err: SimError) -> tuple[int, dict[str, Any]]: ...

    def limit_headers(self, limiter: ModelLimiter) -> list[Header]: ...

    def rate_limited(self, model: str, denial: Denial) -> SimError: ...

    def overloaded(self, retry_after: int | None) -> SimError: ...

    def tool_id(self, rng: random.Random) -> str: ...

    def body(self, chat: ChatRequest, choices: list[Choice]) -> dict[str, Any]: ...

    def script(self, chat: ChatRequest, choices: list[Choice]) -> StreamScript: ...


@dataclass
class SimState:
    config: SimConfig
    clock: Clock
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.seed = self.config.seed
        self.limiters = {name: ModelLimiter(m.limits, self.clock) for name, m in self.config.models.items()}
        self.faults = FaultBoard(self.config, self.clock, self.seed)
        self._latency = random.Random(f"latency:{self.seed}")
        self.started = self.clock.monotonic()

    def pace(self, model: ModelConfig, directives: Directives, extra_s: float) -> tuple[float, float]:
        """Time to first token in seconds and tokens per second (0 = instant) for one request."""
        instant = self.config.is_instant(model)
        if directives.ttft_ms is not None:
            ttft = directives.ttft_ms / 1000
        elif instant or model.ttft_ms.median <= 0:
            ttft = 0.0
        else:
            spec = model.ttft_ms
            drawn = spec.median * math.exp(spec.sigma * self._latency.gauss(0.0, 1.0))
            # The lognormal's far tail would stall a benchmark on one freak draw; real providers time out.
            ttft = min(drawn, spec.p95 * 10) / 1000
        if directives.tps is not None:
            tps = directives.tps
        elif instant or model.tps.mean <= 0:
            tps = 0.0
        else:
            tps = max(1.0, self._latency.gauss(model.tps.mean, model.tps.jitter))
        return ttft + extra_s, tps


async def send_error(
    state: SimState,
    req: Request,
    dialect: Dialect,
    err: SimError,
    *,
    model: str | None = None,
    headers: list[Header] | None = None,
) -> None:
    status, payload = dialect.render_error(err)
    out = list(headers or ())
    if model is not None and model in state.limiters:
        out += dialect.limit_headers(state.limiters[model])
    if err.retry_after is not None:
        out.append((b"retry-after", str(err.retry_after).encode()))
    state.stats.model(model if model in state.limiters else UNROUTED).requests[status] += 1
    await send_json(req.send, status, payload, out)


def _forced_action(directives: Directives) -> Action | None:
    if directives.status is not None:
        return Action("error", directives.status, directives.retry_after)
    if directives.hang_after is not None:
        return Action("hang", after_chunks=directives.hang_after)
    if directives.truncate_after is not None:
        return Action("truncate", after_chunks=directives.truncate_after)
    return None


def decide_fault(
    state: SimState, name: str, model: ModelConfig, directives: Directives
) -> tuple[Action | None, float]:
    forced = _forced_action(directives)
    return (forced, 0.0) if forced is not None else state.faults.decide(name, model)


def fault_error(dialect: Dialect, action: Action) -> SimError | None:
    """The error a fault answers with, or None when the fault shapes delivery (hang, truncate) instead."""
    if action.mode == "rate_limit":
        return error_for_status(429, action.retry_after if action.retry_after is not None else 1)
    if action.mode == "overloaded":
        return dialect.overloaded(action.retry_after)
    if action.mode == "error":
        return error_for_status(action.status, action.retry_after)
    return None


async def serve_chat(
    state: SimState, req: Request, dialect: Dialect, chat: ChatRequest, base: list[Header]
) -> None:
    action, extra_s = decide_fault(state, chat.name, chat.model, chat.directives)
    if action is not None and (err := fault_error(dialect, action)) is not None:
        await send_error(state, req, dialect, err, model=chat.name, headers=base)
        return
    choices = build_choices(chat, state.seed, dialect.tool_id)
    output_tokens = sum(choice.output_tokens for choice in choices)
    limiter = state.limiters[chat.name]
    denial = limiter.admit(chat.input_tokens, output_tokens)
    if denial is not None:
        await send_error(
            state, req, dialect, dialect.rate_limited(chat.name, denial), model=chat.name, headers=base
        )
        return
    stats = state.stats.model(chat.name)
    stats.tokens_in += chat.input_tokens
    ttft_s, tps = state.pace(chat.model, chat.directives, extra_s)
    headers = [*base, *dialect.limit_headers(limiter)]
    hang = action.after_chunks if action is not None and action.mode == "hang" else None
    truncate = action.after_chunks if action is not None and action.mode == "truncate" else None
    if chat.stream:
        stats.requests[200] += 1
        pace = Pace(ttft_s, tps, hang, truncate)
        await play(req, dialect.script(chat, choices), pace, headers, state.clock, stats)
        return
    longest = max((choice.output_tokens for choice in choices), default=0)
    delay_s = ttft_s + (longest / tps if tps > 0 else 0.0)
    fault = action.mode if action is not None else None
    await deliver(state, req, dialect.body(chat, choices), headers, stats, output_tokens, delay_s, fault)


async def deliver(
    state: SimState,
    req: Request,
    payload: dict[str, Any],
    headers: list[Header],
    stats: ModelStats,
    output_tokens: int,
    delay_s: float,
    fault: str | None = None,
) -> None:
    """Send a whole JSON response after `delay_s`; or hang, or cut it in half, as a fault asks."""
    if fault == "hang":
        await unless_disconnected(req.receive, asyncio.Event().wait())
        stats.requests[CLIENT_CLOSED] += 1
        return
    if delay_s > 0:
        finished, _ = await unless_disconnected(req.receive, state.clock.sleep(delay_s))
        if not finished:
            stats.requests[CLIENT_CLOSED] += 1
            return
    stats.requests[200] += 1
    stats.tokens_out += output_tokens
    if fault == "truncate":
        await send_partial(req.send, 200, orjson.dumps(payload), JSON, headers)
        return
    await send_json(req.send, 200, payload, headers)
