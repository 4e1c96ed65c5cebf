"""A receiver under test: the OTLP routes on a real uvicorn server in a background thread, with its own
store; queries run on the server's event loop (the store's engine belongs to it).

Imported by name: the tests that use it put this folder on sys.path.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette

from fleetplane.store.db import Store
from fleetplane.telemetry.forwarder import Forwarder, forward_targets
from fleetplane.telemetry.receiver import Receiver
from fleetplane.telemetry.spanstore import SpanStore

T = TypeVar("T")


@dataclass
class ReceiverUnderTest:
    url: str
    receiver: Receiver
    server: uvicorn.Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop

    @property
    def spans(self) -> SpanStore:
        return self.receiver.spans

    def call(self, work: Callable[[SpanStore], Awaitable[T]], timeout: float = 30) -> T:
        """Run `work(span_store)` on the server's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(_run(work, self.spans), self.loop)
        return future.result(timeout)

    def flush(self) -> int:
        return self.call(lambda s: s.flush())

    def wait_for(self, check: Callable[[], bool], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


async def _run(work: Callable[[SpanStore], Awaitable[T]], spans: SpanStore) -> T:
    return await work(spans)


def free_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def start_receiver(
    database_url: str,
    *,
    environ: Mapping[str, str] | None = None,
    max_body: int | None = None,
    port: int = 0,
    forwarder_options: Mapping[str, Any] | None = None,
    span_options: Mapping[str, Any] | None = None,
) -> ReceiverUnderTest:
    sock = free_socket(port)
    bound = sock.getsockname()[1]
    box: dict[str, Any] = {}
    ready = threading.Event()
    errors: list[BaseException] = []

    async def serve() -> None:
        store = await Store.open(database_url)
        # No retention: some tests send spans dated years ago, which a retention pass would delete.
        spans = SpanStore(store, interval=0.05, **{"retention": None, **(span_options or {})})
        targets = forward_targets(environ or {})
        forwarder = Forwarder(targets, **(forwarder_options or {})) if targets else None
        receiver = Receiver(spans, forwarder=forwarder, **({"max_body": max_body} if max_body else {}))
        app = Starlette(routes=receiver.routes())
        await receiver.start()
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        box.update(server=server, receiver=receiver, loop=asyncio.get_running_loop())
        ready.set()
        try:
            await server.serve(sockets=[sock])
        finally:
            await receiver.stop()
            await store.close()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="otlp-receiver-under-test", daemon=True)
    thread.start()
    ready.wait(60)
    if "server" not in box:
        raise RuntimeError(f"the receiver did not start: {errors}")
    server: uvicorn.Server = box["server"]
    deadline = time.monotonic() + 30
    while not server.started:
        if errors or time.monotonic() > deadline:
            raise RuntimeError(f"the receiver did not start: {errors}")
        time.sleep(0.01)
    return ReceiverUnderTest(f"http://127.0.0.1:{bound}", box["receiver"], server, thread, box["loop"])
