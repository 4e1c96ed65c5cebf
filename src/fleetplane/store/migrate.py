"""Bring a database to the newest schema. Every command that opens the store calls this first."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from fleetplane.store.url import sync_url

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(raw_url: str) -> None:
    url = sync_url(raw_url)
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            # "heads": wings add their migrations on branches of their own (each from the shared base).
            command.upgrade(config, "heads")
    finally:
        engine.dispose()
