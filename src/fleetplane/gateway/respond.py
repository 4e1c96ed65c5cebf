"""Sending answers: JSON replies, and event streams that notice a client going away.

Starlette's streaming response only learns of a disconnect when it next writes; a stream waiting on a
slow upstream would keep the upstream call open. `EventStream` watches the connection while it waits
and cancels the stream at once, so the upstream connection is closed and the partial usage recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from starlette.types import Receive, Scope, Send

T = TypeVar("T")


class ClientGone(Exception):
    """The client closed its connection before its answer was ready."""


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(
    receive: Receive, work: Awaitable[T], discard: Callable[[T], Awaitable[None]] | None = None
) -> T:
    """Run `work`; if the client disconnects first, cancel it and raise `ClientGone`.

    Work can still finish after the cancel (it was past its last await, or a layer below let the
    cancellation go): what it made then has no one to go to, and `discard` gives it back (an opened
    stream holds a quota reservation and an upstream connection that nothing else would release)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        try:
            made = await task
        except (asyncio.CancelledError, Exception):
            pass
        else:
            if discard is not None:
                await asyncio.shield(discard(made))
        raise ClientGone
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


class EventStream:
    """An ASGI response for server-sent events."""

    def __init__(self, body: AsyncIterator[bytes], headers: dict[str, str]) -> None:
        self.body = body
        self.headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        self.headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Start the stream before anything can fail, so its cleanup is sure to run on aclose().
        try:
            first = await self.body.__anext__()
        except StopAsyncIteration:
            first = b""
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        pump = asyncio.ensure_future(self._pump(send, first))
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            done, _ = await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                pump.result()
        except asyncio.CancelledError:
            # The server is stopping mid-stream: the stream's own cleanup below records what it sent.
            pass
        finally:
            watcher.cancel()
            if not pump.done():
                # The client left, or the server is stopping: stop the stream where it waits.
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await asyncio.shield(pump)
            # Runs the stream's own cleanup (close the upstream, settle usage) if the pump did not.
            await self.body.aclose()  # type: ignore[attr-defined]

    async def _pump(self, send: Send, first: bytes) -> None:
        if first:
            await send({"type": "http.response.body", "body": first, "more_body": True})
        async for chunk in self.body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
