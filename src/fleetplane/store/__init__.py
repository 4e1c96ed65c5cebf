"""Durable state: SQLAlchemy 2 tables and Alembic migrations; SQLite by default, Postgres by URL.

Ground floor: may import `fleetplane.manifests` (it persists applied documents), nothing above.
"""
