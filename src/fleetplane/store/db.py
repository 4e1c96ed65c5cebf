"""`Store`: the one handle on the database. Opening it migrates the schema.

A database that is away must turn into an error in bounded time, never a hang: on Postgres a connection
attempt gives up after `CONNECT_TIMEOUT`, the server cancels a statement after `STATEMENT_TIMEOUT`, a pool
checkout waits at most `POOL_TIMEOUT`, and TCP keepalives and `tcp_user_timeout` end a connection whose
server stopped answering (a blackholed network, where no statement timeout can arrive). Any of these set
in the URL's query wins. SQLite keeps its busy timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fleetplane.store.migrate import migrate
from fleetplane.store.url import async_url, database_url, redact

CONNECT_TIMEOUT = 5  # seconds
STATEMENT_TIMEOUT = 10  # seconds
POOL_TIMEOUT = 10  # seconds
# libpq: unacknowledged data older than this drops the connection; keepalives probe an idle one.
TCP_SETTINGS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,  # milliseconds
}


class Store:
    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url

    @property
    def display_url(self) -> str:
        return redact(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @classmethod
    async def open(cls, url: str | None = None, *, run_migrations: bool = True) -> Store:
        raw = database_url(url)
        if run_migrations:
            # Alembic is blocking; keep the event loop free while it runs.
            await asyncio.to_thread(migrate, raw)
        target = async_url(raw)
        kwargs: dict[str, Any] = {}
        if target.get_backend_name() == "postgresql":
            kwargs.update(
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                pool_timeout=POOL_TIMEOUT,
                connect_args=postgres_connect_args(target.query),
            )
        engine = create_async_engine(target, **kwargs)
        if target.get_backend_name() == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return cls(engine, raw)

    async def close(self) -> None:
        await self.engine.dispose()


def postgres_connect_args(query: Mapping[str, Any]) -> dict[str, Any]:
    """Timeouts for psycopg, leaving out any the URL's query already sets."""
    args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, **TCP_SETTINGS}
    if "options" not in query:
        args["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT * 1000}"
    return {k: v for k, v in args.items() if k not in query}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the CLI read while the server writes; the busy timeout rides out short write locks.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
