"""Which database: `FLEETPLANE_DATABASE_URL`, else a SQLite file under the fleetplane home."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url


def home() -> Path:
    """Where embedded state lives: `FLEETPLANE_HOME`, else `.fleetplane/` in the working directory."""
    return Path(os.environ.get("FLEETPLANE_HOME") or ".fleetplane").resolve()


class DatabaseURLError(ValueError):
    pass


def database_url(raw: str | None = None) -> str:
    """The URL as given or configured, before driver selection."""
    if raw:
        return raw
    env = os.environ.get("FLEETPLANE_DATABASE_URL")
    if env:
        return env
    return f"sqlite:///{home() / 'fleetplane.db'}"


def _parse(raw: str) -> URL:
    try:
        url = make_url(raw)
    except Exception as exc:
        raise DatabaseURLError(
            f"cannot parse database URL {redact(raw)!r}: expected e.g. "
            "sqlite:///path/to/fleetplane.db or postgresql://user@host:5432/db"
        ) from exc
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseURLError(
            f"database {url.get_backend_name()!r} is not supported: use sqlite:///PATH or postgresql://..."
        )
    return url


def async_url(raw: str) -> URL:
    """The URL with the async driver fleetplane uses: aiosqlite or psycopg 3."""
    url = _parse(raw)
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    return url.set(drivername="postgresql+psycopg")


def sync_url(raw: str) -> URL:
    """The URL with a blocking driver, for migrations."""
    url = _parse(raw)
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite")
    return url.set(drivername="postgresql+psycopg")


def redact(raw: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(raw).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
