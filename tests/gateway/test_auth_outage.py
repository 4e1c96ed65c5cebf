"""The key store going away: known keys keep working from the in-memory index, an unknown key is a 503
saying the key store cannot be reached (never a 500, never an unbounded wait), and however many unknown
keys arrive at once they cause at most one read of the key table per second."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.engine import make_url

from fleetplane.gateway.auth import KeyIndex
from fleetplane.gateway.errors import GatewayError
from fleetplane.state.clock import ManualClock
from fleetplane.store.db import Store
from fleetplane.store.keys import KeyRepository, NewKey

STORE_AWAY = "The virtual key store cannot be reached, so this key cannot be checked; try again shortly."
BAD = "fp-not-a-key-aaaaaaaaaaaaaaaaaaaaaaaa"


class DatabaseProxy:
    """A TCP proxy in front of Postgres that can pass, refuse (reset at once) or blackhole (accept, never
    answer) connections; switching mode cuts the connections already open, as an outage would."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.mode = "pass"
        self._open: list[asyncio.StreamWriter] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="db-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            async with server:
                await server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError, RuntimeError):  # stopped by `close`
            self._loop.run_until_complete(main())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            writer.transport.abort()
            return
        self._open.append(writer)
        if self.mode == "blackhole":
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._open.append(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if self.mode != "pass":
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def set(self, mode: str) -> None:
        def cut() -> None:
            self.mode = mode
            if mode != "pass":
                for writer in self._open:
                    writer.transport.abort()
                self._open.clear()

        done = threading.Event()
        self._loop.call_soon_threadsafe(lambda: (cut(), done.set()))
        done.wait(5)

    def close(self) -> None:
        self.set("refuse")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


@pytest.fixture
def proxied_postgres(postgres_url: str) -> Iterator[tuple[DatabaseProxy, str]]:
    """A fresh Postgres database reached through a proxy the test can cut."""
    url = make_url(postgres_url)
    proxy = DatabaseProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    finally:
        proxy.close()


# -- through the gateway -------------------------------------------------------------------------------------


def _chat(gateway: Any, headers: dict[str, str]) -> httpx.Response:
    body = {"model": "solo", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=30)


def _messages(gateway: Any, key: str) -> httpx.Response:
    body = {"model": "solo", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(gateway.v1 + "/messages", json=body, headers={"x-api-key": key}, timeout=30)


def _assert_store_away(response: httpx.Response, api: str) -> None:
    assert response.status_code == 503
    assert response.headers["x-fleetplane-error-source"] == "gateway"
    assert response.headers["retry-after"] == "1"
    if api == "openai":
        expected: dict[str, Any] = {
            "error": {
                "message": STORE_AWAY,
                "type": "service_unavailable",
                "param": None,
                "code": "key_store_unavailable",
            }
        }
    else:
        expected = {"type": "error", "error": {"type": "overloaded_error", "message": STORE_AWAY}}
    assert orjson.loads(response.content) == expected


@pytest.mark.parametrize("outage", ["refuse", "blackhole"])
def test_unknown_keys_get_503_and_known_keys_keep_working_while_the_store_is_away(
    make_gateway: Any, proxied_postgres: tuple[DatabaseProxy, str], outage: str
) -> None:
    proxy, url = proxied_postgres
    gateway = make_gateway(url)
    good = {"authorization": f"Bearer {gateway.keys['full']}"}
    assert _chat(gateway, good).status_code == 200

    proxy.set(outage)
    # Past the one-refresh-per-second window of the start, so the unknown key makes the index read.
    threading.Event().wait(1.1)
    _assert_store_away(_chat(gateway, {"authorization": f"Bearer {BAD}"}), "openai")
    _assert_store_away(_messages(gateway, BAD), "anthropic")
    assert _chat(gateway, good).status_code == 200
    assert _messages(gateway, gateway.keys["full"]).status_code == 200

    proxy.set("pass")
    records = gateway.usage(at_least=3)
    # The three answered requests are recorded; the refused ones were never charged.
    assert len(records) == 3
    assert all(r.key_id is not None and r.status == 200 for r in records)


# -- the index itself ----------------------------------------------------------------------------------------


class CountingRepository(KeyRepository):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.reads = 0

    async def all(self) -> Any:
        self.reads += 1
        return await super().all()


@pytest.fixture
async def index_store(
    proxied_postgres: tuple[DatabaseProxy, str],
) -> AsyncIterator[tuple[DatabaseProxy, Store]]:
    proxy, url = proxied_postgres
    store = await Store.open(url)
    try:
        await KeyRepository(store).create(
            NewKey(name="known", organization="acme", team="support"),
            secret="fp-known-secret-0123456789",
            now=0,
        )
        yield proxy, store
    finally:
        proxy.set("pass")
        await store.close()


KNOWN = {"authorization": "Bearer fp-known-secret-0123456789"}


async def _outcomes(index: KeyIndex, count: int) -> list[str]:
    async def one() -> str:
        try:
            await index.authenticate({"authorization": f"Bearer {BAD}"})
        except GatewayError as error:
            return f"{error.status} {error.code}"
        return "200"

    return list(await asyncio.gather(*(one() for _ in range(count))))


@pytest.mark.anyio
async def test_fifty_concurrent_unknown_keys_read_the_key_table_once(
    index_store: tuple[DatabaseProxy, Store],
) -> None:
    _, store = index_store
    repo = CountingRepository(store)
    clock = ManualClock()
    index = KeyIndex(repo, clock=clock)
    await index.refresh()
    clock.advance(1.0)
    reads = repo.reads
    assert await _outcomes(index, 50) == ["401 invalid_api_key"] * 50
    assert repo.reads == reads + 1
    assert index.refreshes == 2
    # Within the second nothing reads again, however many come.
    assert await _outcomes(index, 50) == ["401 invalid_api_key"] * 50
    assert repo.reads == reads + 1
    clock.advance(1.0)
    assert await _outcomes(index, 10) == ["401 invalid_api_key"] * 10
    assert repo.reads == reads + 2


@pytest.mark.anyio
@pytest.mark.parametrize("outage", ["refuse", "blackhole"])
async def test_with_the_store_away_unknown_keys_are_503_after_one_bounded_attempt(
    index_store: tuple[DatabaseProxy, Store], outage: str
) -> None:
    proxy, store = index_store
    repo = CountingRepository(store)
    clock = ManualClock()
    index = KeyIndex(repo, clock=clock, timeout=0.5)
    await index.refresh()
    proxy.set(outage)
    clock.advance(1.0)
    reads = repo.reads
    assert await _outcomes(index, 50) == ["503 key_store_unavailable"] * 50
    assert repo.reads == reads + 1  # one attempt, shared by all fifty
    assert (await index.authenticate(KNOWN)).key_name == "known"  # from the index, no store needed
    assert await _outcomes(index, 5) == ["503 key_store_unavailable"] * 5  # still within the second
    assert repo.reads == reads + 1

    proxy.set("pass")
    clock.advance(1.0)
    assert await _outcomes(index, 5) == ["401 invalid_api_key"] * 5  # the store answers: truly unknown
    fresh_key = NewKey(name="fresh", organization="acme", team="support")
    await KeyRepository(store).create(fresh_key, secret="fp-fresh-secret-0123456789", now=0)
    clock.advance(1.0)
    fresh = await index.authenticate({"authorization": "Bearer fp-fresh-secret-0123456789"})
    assert fresh.key_name == "fresh"  # a key created a moment ago works at once


@pytest.mark.anyio
async def test_the_background_refresh_survives_the_store_being_away(
    index_store: tuple[DatabaseProxy, Store],
) -> None:
    proxy, store = index_store
    index = KeyIndex(KeyRepository(store), clock=ManualClock(), timeout=0.5)
    await index.refresh()
    proxy.set("refuse")
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises; `run` logs it and goes on
        await index.refresh()
    assert (await index.authenticate(KNOWN)).key_name == "known"


@pytest.mark.anyio
async def test_a_key_created_right_after_a_refresh_works_at_its_first_request(
    index_store: tuple[DatabaseProxy, Store],
) -> None:
    _, store = index_store
    repo = CountingRepository(store)
    clock = ManualClock()
    index = KeyIndex(repo, clock=clock)
    await index.refresh()  # the periodic refresh, a moment before the key exists
    await KeyRepository(store).create(
        NewKey(name="fresh", organization="acme", team="support"), secret="fp-fresh-secret-0123456789", now=0
    )
    clock.advance(0.25)
    reads = repo.reads
    first = asyncio.create_task(index.authenticate({"authorization": "Bearer fp-fresh-secret-0123456789"}))
    others = asyncio.create_task(_outcomes(index, 20))
    for _ in range(20):  # let both reach the wait for the next allowed read
        await asyncio.sleep(0)
    assert not first.done() and repo.reads == reads  # no read before a second has passed since the last
    clock.advance(0.75)
    tenant = await first
    assert (tenant.key_name, tenant.team) == ("fresh", "support")
    assert await others == ["401 invalid_api_key"] * 20
    assert repo.reads == reads + 1  # one read answered all 21 requests
