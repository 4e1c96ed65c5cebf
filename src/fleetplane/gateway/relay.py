"""Carrying an open upstream stream to the client, chunk by chunk, and settling it at the end.

Nothing is buffered beyond the event being parsed. However the stream ends — completed, cut by the
upstream (hung or truncated), stopped by a policy, or abandoned by the client — the upstream
connection is closed and the usage it generated is settled exactly once: the upstream's reported
usage when it sent one, else the tokens counted from what actually streamed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson

from fleetplane.gateway.context import RequestContext
from fleetplane.gateway.errors import GatewayError
from fleetplane.gateway.policy import Outcome, OutcomeKind, PolicyChain
from fleetplane.gateway.router import OpenStream
from fleetplane.gateway.usage import counted_input, counted_output
from fleetplane.telemetry.cost import TokenUsage
from fleetplane.telemetry.tokens import count_text


def error_event(ctx: RequestContext, kind: str, message: str) -> bytes:
    """A final error event in the client's API, so an SDK raises instead of ending silently."""
    if ctx.client_api == "anthropic":
        payload = {
            "type": "error",
            "error": {"type": kind if kind != "api_error" else "api_error", "message": message},
        }
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    return (
        b"data: "
        + orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})
        + b"\n\n"
    )


class _Meter:
    """Output tokens streamed so far, counted piece by piece as they pass (only when a policy asks)."""

    def __init__(self, ctx: RequestContext, stream: OpenStream) -> None:
        self._ctx = ctx
        self._stream = stream
        self._seen = 0
        self.output = 0

    def streamed_after(self, _: list[bytes]) -> int:
        pieces = self._stream.watcher.text()
        fresh = pieces[self._seen :]
        self._seen = len(pieces)
        self.output += sum(count_text(piece) for piece in fresh)
        return self.output

    def usage(self) -> TokenUsage:
        return TokenUsage(input_tokens=self._ctx.input_estimate or 0, output_tokens=self.output)


def settle_usage(ctx: RequestContext, stream: OpenStream, *, complete: bool) -> TokenUsage:
    """Reported usage when the upstream finished and reported; otherwise count what was generated."""
    reported = stream.watcher.usage
    if complete and reported is not None and (reported.input_tokens or reported.output_tokens):
        ctx.usage_source = "reported"
        return reported
    ctx.usage_source = "counted"
    generated = counted_output(stream.watcher.text())
    if reported is not None and reported.input_tokens:
        return TokenUsage(
            input_tokens=reported.input_tokens,
            output_tokens=max(reported.output_tokens, generated),
            cache_read_tokens=reported.cache_read_tokens,
            cache_write_tokens=reported.cache_write_tokens,
        )
    return TokenUsage(input_tokens=counted_input(ctx.operation, ctx.body), output_tokens=generated)


async def abandon(ctx: RequestContext, stream: OpenStream) -> None:
    """Settle a stream that opened after its client had gone, before a byte was relayed: its connection
    is released and its reservation reconciled as cancelled, charged for what the upstream read."""
    ctx.client_disconnected = True
    stream.held.release()
    ctx.usage = settle_usage(ctx, stream, complete=False)
    await stream.run.settle(
        Outcome("cancelled", status=200, usage=ctx.usage, detail="the client went away before the stream")
    )


async def relay(
    ctx: RequestContext,
    stream: OpenStream,
    chain: PolicyChain,
    *,
    on_settled: Callable[[RequestContext, bytes | None], Awaitable[None]],
    capture: bool = False,
) -> AsyncIterator[bytes]:
    """Yield the client's bytes; `on_settled` runs once at the end with the whole stream if captured."""
    outcome: OutcomeKind = "ok"
    detail: str | None = None
    captured: list[bytes] | None = [] if capture else None
    complete = False
    silence = stream.attempt.deployment.provider.read_timeout
    try:
        meter = _Meter(ctx, stream)
        if ctx.progress_mark is not None and meter.streamed_after(stream.first) > ctx.progress_mark:
            await chain.on_progress(ctx, stream.attempt, meter.usage())
        if stream.first:
            # One write per upstream read: each event on its own costs a send and a syscall.
            batch = b"".join(stream.first)
            if captured is not None:
                captured.append(batch)
            yield batch
        content = stream.response.content
        while True:
            async with asyncio.timeout(silence):
                data = await content.readany()
            if not data:
                break
            out = [b for event in stream.parser.feed(data) for b in stream.watcher.feed(event)]
            if ctx.progress_mark is not None and meter.streamed_after(out) > ctx.progress_mark:
                # Charged before sent: the client never holds tokens the quota has not counted.
                await chain.on_progress(ctx, stream.attempt, meter.usage())
            if out:
                batch = b"".join(out)
                if captured is not None:
                    captured.append(batch)
                yield batch
        tail = [b for event in stream.parser.finish() for b in stream.watcher.feed(event)]
        tail += stream.watcher.finish()
        for chunk in tail:
            if captured is not None:
                captured.append(chunk)
            yield chunk
        if stream.watcher.error is not None:
            outcome, detail = "server_error", str(stream.watcher.error.get("message") or "error event")
        elif not stream.watcher.finished:
            outcome, detail = "connection", "the upstream ended the stream without finishing it"
            yield error_event(ctx, "api_error", f"{stream.attempt.deployment.id}: {detail}")
        else:
            complete = True
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        deployment = stream.attempt.deployment
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            outcome = "timeout"
            detail = f"{deployment.id}: the upstream stream stalled (nothing for {silence:g}s)"
        else:
            outcome = "connection"
            detail = f"{deployment.id}: the upstream connection broke mid-stream ({type(exc).__name__})"
        yield error_event(ctx, "api_error", detail)
    except GatewayError as stop:
        outcome, detail = "cancelled", stop.message
        yield error_event(ctx, "rate_limit_error" if stop.status == 429 else "api_error", stop.message)
    except (asyncio.CancelledError, GeneratorExit):
        ctx.client_disconnected = True
        outcome = "cancelled"
        raise
    finally:
        stream.held.release()
        ctx.usage = settle_usage(ctx, stream, complete=complete)
        ctx.stream_error = detail
        reason = getattr(stream.watcher, "finish_reason", None) or getattr(
            stream.watcher, "stop_reason", None
        )
        ctx.response_meta = {
            "finish_reasons": [reason] if reason else [],
            "model": stream.attempt.deployment.model,
        }
        whole = b"".join(captured) if captured is not None and complete else None

        async def finish() -> None:
            await stream.run.settle(Outcome(outcome, status=200, usage=ctx.usage, detail=detail))
            await on_settled(ctx, whole)

        # One unit, shielded: a second cancellation (the server stopping while a cancelled stream
        # settles) must not leave the quota charged and the usage record unwritten.
        await asyncio.shield(finish())
