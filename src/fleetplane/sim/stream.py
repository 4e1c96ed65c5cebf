"""Playing a server-sent-event stream at a simulated speed, with hangs, truncations and cancellations.

An API module turns its choices into a `StreamScript` (opening events, paced content events, closing
events); `play` sends it. Content events that fall due together go out in one write, so an instant model
costs one write per stream rather than one per token.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from fleetplane.sim.asgi import SSE, Headers, Request, unless_disconnected
from fleetplane.sim.stats import ModelStats
from fleetplane.state.clock import Clock

Outcome = Literal["completed", "cancelled", "truncated"]

# Delays shorter than this are not worth a timer: the event loop's own resolution is about a millisecond.
_MIN_SLEEP_S = 0.001


@dataclass(slots=True)
class StreamScript:
    head: list[bytes] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    # Tokens each content event carries, and the token position (within its choice) at which it is due.
    weights: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    tail: list[bytes] = field(default_factory=list)

    def add(self, chunk: bytes, weight: int, position: int) -> None:
        self.chunks.append(chunk)
        self.weights.append(weight)
        self.positions.append(position)


@dataclass(frozen=True, slots=True)
class Pace:
    ttft_s: float
    tps: float  # 0 = instant
    hang_after: int | None = None
    truncate_after: int | None = None

    @property
    def instant(self) -> bool:
        return self.ttft_s <= 0 and self.tps <= 0 and self.hang_after is None


async def play(
    req: Request, script: StreamScript, pace: Pace, headers: Headers, clock: Clock, stats: ModelStats
) -> Outcome:
    await req.send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", SSE), (b"cache-control", b"no-cache"), *headers],
        }
    )
    stats.streams_started += 1
    if pace.instant:
        # Nothing to wait for, so no need to watch for the client leaving.
        outcome = await _send(req, script, pace, clock, stats)
    else:
        finished, outcome = await unless_disconnected(req.receive, _send(req, script, pace, clock, stats))
        if not finished:
            outcome = "cancelled"
    if outcome == "completed":
        stats.streams_completed += 1
    elif outcome == "cancelled":
        stats.streams_cancelled += 1
    else:
        stats.streams_truncated += 1
    return outcome


async def _send(req: Request, script: StreamScript, pace: Pace, clock: Clock, stats: ModelStats) -> Outcome:
    send = req.send
    start = clock.monotonic()
    limit = len(script.chunks)
    if pace.hang_after is not None:
        limit = min(limit, pace.hang_after)
    elif pace.truncate_after is not None:
        limit = min(limit, pace.truncate_after)
    buffer = list(script.head)
    tokens = 0
    holding_content = False
    for i in range(limit):
        due = start + pace.ttft_s + (script.positions[i] / pace.tps if pace.tps > 0 else 0.0)
        delay = due - clock.monotonic()
        if delay > _MIN_SLEEP_S:
            if holding_content:
                await send({"type": "http.response.body", "body": b"".join(buffer), "more_body": True})
                stats.tokens_out += tokens
                buffer, tokens, holding_content = [], 0, False
            await clock.sleep(delay)
        buffer.append(script.chunks[i])
        tokens += script.weights[i]
        holding_content = True
    if limit == 0 and pace.ttft_s > _MIN_SLEEP_S:
        await clock.sleep(pace.ttft_s)
    finished = limit == len(script.chunks) and pace.hang_after is None and pace.truncate_after is None
    if finished:
        buffer.extend(script.tail)
    await send({"type": "http.response.body", "body": b"".join(buffer), "more_body": not finished})
    stats.tokens_out += tokens
    if finished:
        return "completed"
    if pace.truncate_after is not None:
        # Returning without the final body message makes the server close the connection mid-stream.
        return "truncated"
    stats.streams_hung += 1
    await asyncio.Event().wait()
    return "cancelled"
