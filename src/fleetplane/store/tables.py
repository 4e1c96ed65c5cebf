"""The durable tables. Alembic migrations under `migrations/` create them; this module is their shape."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

# Timestamps are UNIX seconds (float): the same on SQLite and Postgres, and what an injected clock gives.

manifests = Table(
    "manifests",
    metadata,
    Column("kind", String(64), primary_key=True),
    Column("name", String(253), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("source", String(1024), nullable=True),
    Column("generation", BigInteger, nullable=False),
    Column("applied_at", Float, nullable=False),
)

# Every spec ever applied, content-addressed, so a rollout can be listed and undone.
manifest_revisions = Table(
    "manifest_revisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("name", String(253), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("document", JSON, nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("applied_at", Float, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Index("ix_manifest_revisions_kind_name", "kind", "name"),
)

# One row: bumped by every apply, polled by every server replica to know when to reload.
config_generation = Table(
    "config_generation",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)

virtual_keys = Table(
    "virtual_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(253), nullable=False, unique=True),
    # sha256 of the secret: keys are 256-bit random, so a fast hash is safe and allows an indexed lookup.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("organization", String(253), nullable=False),
    Column("team", String(253), nullable=False),
    Column("user", String(253), nullable=True),
    Column("customer", String(253), nullable=True),
    Column("agent", String(253), nullable=True),
    Column("models", JSON, nullable=False),
    Column("source", String(16), nullable=False),  # manifest | cli | up
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("api", String(16), nullable=False),  # chat | messages | embeddings
    Column("key_id", String(32), nullable=True),
    Column("organization", String(253), nullable=True),
    Column("team", String(253), nullable=True),
    Column("user", String(253), nullable=True),
    Column("customer", String(253), nullable=True),
    Column("agent", String(253), nullable=True),
    Column("model", String(253), nullable=True),
    Column("provider", String(253), nullable=True),
    Column("deployment_model", String(253), nullable=True),
    Column("status", Integer, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("cache_read_tokens", Integer, nullable=False, default=0),
    Column("cache_write_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("cost_usd", Numeric(20, 10), nullable=False, default=0),
    Column("usage_source", String(16), nullable=False),  # reported | counted | cache | none
    Column("latency_ms", Float, nullable=True),
    Column("ttft_ms", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("fallback", Boolean, nullable=False, default=False),
    Column("cache_hit", Boolean, nullable=False, default=False),
    Column("client_disconnected", Boolean, nullable=False, default=False),
    Column("error_type", String(64), nullable=True),
    UniqueConstraint("request_id", name="uq_usage_records_request_id"),
    Index("ix_usage_records_created_at", "created_at"),
    Index("ix_usage_records_team_agent", "team", "agent"),
)
