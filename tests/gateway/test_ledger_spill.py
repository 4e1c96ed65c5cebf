"""The usage ledger at shutdown: writing what is queued is bounded in time, what the store cannot take is
spilled to a JSONL file, and the next start replays the file into the store (exactly the same records,
each once) and deletes it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from fleetplane.gateway.app import GatewayRuntime, GatewaySettings
from fleetplane.gateway.ledger import Pending, UsageLedger, spill_files
from fleetplane.state.clock import ManualClock
from fleetplane.store.db import Store
from fleetplane.store.usage import UsageRecord, UsageRepository
from fleetplane.telemetry.cost import Rates, TokenUsage

pytestmark = pytest.mark.anyio


def records() -> list[UsageRecord]:
    return [
        UsageRecord(
            request_id="req_full",
            created_at=1_700_000_000.123456,
            api="chat",
            status=200,
            stream=True,
            usage_source="reported",
            key_id="k1",
            organization="acme",
            team="support",
            user="ana",
            agent="bot",
            model="chain",
            provider="sim",
            deployment_model="sim-large",
            input_tokens=1234,
            output_tokens=56,
            cache_read_tokens=1000,
            cache_write_tokens=7,
            reasoning_tokens=9,
            cost_usd=Decimal("0.0123456789"),
            latency_ms=812.25,
            ttft_ms=101.5,
            attempts=2,
            fallback=True,
            cache_hit=False,
            client_disconnected=True,
            error_type=None,
        ),
        UsageRecord(
            request_id="req_error",
            created_at=1_700_000_001.5,
            api="messages",
            status=503,
            stream=False,
            usage_source="none",
            customer="globex — ünïcode",
            error_type="unavailable",
        ),
    ]


def queued(ledger: UsageLedger) -> list[UsageRecord]:
    originals = records()
    for record in originals:
        ledger.record(Pending(record, usage=None, rates=None, price_provider=None, price_model=None))
    return originals


@pytest.fixture
async def unreachable_store() -> AsyncIterator[Store]:
    """Postgres on a port nothing listens on: every write is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = await Store.open(f"postgresql://postgres@127.0.0.1:{port}/gone", run_migrations=False)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def silent_store() -> AsyncIterator[Store]:
    """Postgres that accepts connections and never answers: a blackholed database."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = await Store.open(f"postgresql://postgres@127.0.0.1:{port}/gone", run_migrations=False)
    try:
        yield store
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()
        await store.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url)
    try:
        yield store
    finally:
        await store.close()


async def test_records_the_store_cannot_take_are_spilled_and_replayed_exactly(
    unreachable_store: Store, store: Store, tmp_path: Path
) -> None:
    spill = tmp_path / "spill"
    down = UsageLedger(UsageRepository(unreachable_store), spill_dir=spill)
    originals = queued(down)
    assert await down.close(timeout=5) == 2
    assert down.pending == 0
    (path,) = spill_files(spill)
    assert len(path.read_bytes().splitlines()) == 2

    repo = UsageRepository(store)
    up = UsageLedger(repo, spill_dir=spill)
    assert await up.replay() == 2
    assert spill_files(spill) == []
    assert [await repo.get(r.request_id) for r in originals] == originals


async def test_a_blackholed_store_does_not_hold_shutdown(silent_store: Store, tmp_path: Path) -> None:
    ledger = UsageLedger(UsageRepository(silent_store), spill_dir=tmp_path / "spill")
    queued(ledger)
    # The flush is cut off by the bound (the driver's own connect timeout is longer) and the batch it
    # held comes back to be spilled.
    assert await ledger.close(timeout=0.5) == 2
    assert len(spill_files(tmp_path / "spill")) == 1


async def test_spilled_records_are_priced(unreachable_store: Store, store: Store, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    down = UsageLedger(UsageRepository(unreachable_store), spill_dir=spill)
    record = records()[0]
    usage = TokenUsage(input_tokens=1_000, output_tokens=500)
    down.record(Pending(record, usage=usage, rates=Rates.of(2.0, 8.0), price_provider=None, price_model="x"))
    await down.close(timeout=5)
    repo = UsageRepository(store)
    await UsageLedger(repo, spill_dir=spill).replay()
    replayed = await repo.get(record.request_id)
    assert replayed is not None and replayed.cost_usd == Decimal("0.006")


async def test_a_record_both_written_and_spilled_is_recorded_once(
    unreachable_store: Store, store: Store, tmp_path: Path
) -> None:
    spill = tmp_path / "spill"
    repo = UsageRepository(store)
    await repo.insert_many(records()[:1])  # a write that committed just as the bound cut it off
    down = UsageLedger(UsageRepository(unreachable_store), spill_dir=spill)
    queued(down)
    await down.close(timeout=5)
    assert await UsageLedger(repo, spill_dir=spill).replay() == 2
    assert sum(r["requests"] for r in await repo.totals([])) == 2


async def test_a_file_stays_until_the_store_takes_it(unreachable_store: Store, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    first = UsageLedger(UsageRepository(unreachable_store), spill_dir=spill)
    queued(first)
    await first.close(timeout=5)
    again = UsageLedger(UsageRepository(unreachable_store), spill_dir=spill)
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises for a refused connection
        await again.replay()
    assert len(spill_files(spill)) == 1


async def test_unreadable_lines_and_unfinished_files_are_not_replayed(store: Store, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    good = records()[1]
    line = (
        b'{"request_id": "req_error", "created_at": 1700000001.5, "api": "messages", "status": 503,'
        b' "stream": false, "usage_source": "none", "customer": "globex \\u2014 \\u00fcn\\u00efcode",'
        b' "error_type": "unavailable", "cost_usd": "0"}'
    )
    (spill / "usage-20250101T000000-aaaa.jsonl").write_bytes(b"{not json\n" + line + b"\n\n")
    (spill / "usage-20250101T000001-bbbb.partial").write_bytes(b"{half")
    repo = UsageRepository(store)
    assert await UsageLedger(repo, spill_dir=spill).replay() == 1
    assert await repo.get("req_error") == good
    assert [p.name for p in spill.iterdir()] == ["usage-20250101T000001-bbbb.partial"]


async def test_the_gateway_replays_spill_files_when_it_starts(
    unreachable_store: Store, database_url: str, tmp_path: Path
) -> None:
    spill = tmp_path / "spill"
    down = UsageLedger(UsageRepository(unreachable_store), spill_dir=spill)
    originals = queued(down)
    await down.close(timeout=5)

    store = await Store.open(database_url)
    runtime = GatewayRuntime(store, GatewaySettings(spill_dir=spill), clock=ManualClock())
    try:
        await runtime.start()
        repo = UsageRepository(store)
        assert [await repo.get(r.request_id) for r in originals] == originals
        assert spill_files(spill) == []
    finally:
        await runtime.stop()
        await store.close()


async def test_the_gateway_spills_at_shutdown_when_the_store_is_away(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    store = await Store.open(f"sqlite:///{tmp_path / 'gw.db'}")
    runtime = GatewayRuntime(store, GatewaySettings(spill_dir=spill), clock=ManualClock())
    await runtime.start()
    originals = queued(runtime.ledger)
    await store.engine.dispose()
    # The database file goes away under the server: no write can succeed any more.
    (tmp_path / "gw.db").unlink()
    (tmp_path / "gw.db").mkdir()
    try:
        await runtime.stop()
    finally:
        await store.close()
    (path,) = spill_files(spill)
    assert len(path.read_bytes().splitlines()) == len(originals)
