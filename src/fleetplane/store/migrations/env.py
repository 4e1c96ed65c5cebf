"""Alembic environment: migrations run on a blocking connection handed in by `fleetplane.store.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from fleetplane.store.tables import metadata

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas starting together must not migrate twice at once.
            connection.execute(text("SELECT pg_advisory_xact_lock(7361829)"))
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
