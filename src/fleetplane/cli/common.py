"""What every command module shares: the consoles, how a command fails, and running work on the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import DBAPIError

from fleetplane.state.clock import SYSTEM_CLOCK
from fleetplane.store.db import Store
from fleetplane.store.url import DatabaseURLError, database_url, redact

T = TypeVar("T")

# Exit codes: 1 = the command ran and found a problem (invalid manifests); 2 = bad input (as click's
# own usage errors).
FAILED = 1
BAD_INPUT = 2

# Rich reads the stream at print time, so these follow any redirection (tests, pipes).
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DatabaseURL = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="FLEETPLANE_DATABASE_URL",
        show_envvar=True,
        help="Where state is stored: sqlite:///PATH or postgresql://USER@HOST/DB "
        "(default: SQLite under $FLEETPLANE_HOME, else ./.fleetplane).",
    ),
]


def fail(message: str, *, code: int = BAD_INPUT) -> NoReturn:
    """End the command with one line on stderr and an exit code, never a traceback."""
    err_console.print(f"error: {message}", style="red", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(work)


def with_store(url: str | None, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open (and migrate) the store, run `work` on it, close it."""

    async def main() -> T:
        try:
            store = await Store.open(url)
        except DatabaseURLError as exc:
            fail(str(exc))
        except (DBAPIError, OSError) as exc:
            # The driver's own first line says what failed; SQLAlchemy's wrapping adds only noise.
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            fail(f"cannot open the database {redact(database_url(url))}: {reason}", code=FAILED)
        try:
            return await work(store)
        finally:
            await store.close()

    return run(main())


def now() -> float:
    return SYSTEM_CLOCK.now()


def format_time(seconds: float | None) -> str:
    """UNIX seconds as UTC to the minute, the way tables show times; '-' for none."""
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
