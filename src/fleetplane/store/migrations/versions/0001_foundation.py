"""Foundation: applied manifests and their revisions, the config generation, virtual keys, usage.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "manifests",
        sa.Column("kind", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("source", sa.String(1024), nullable=True),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("applied_at", sa.Float, nullable=False),
    )
    op.create_table(
        "manifest_revisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("applied_at", sa.Float, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_manifest_revisions_kind_name", "manifest_revisions", ["kind", "name"])
    op.create_table(
        "config_generation",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "virtual_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(253), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("organization", sa.String(253), nullable=False),
        sa.Column("team", sa.String(253), nullable=False),
        sa.Column("user", sa.String(253), nullable=True),
        sa.Column("customer", sa.String(253), nullable=True),
        sa.Column("agent", sa.String(253), nullable=True),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("api", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("organization", sa.String(253), nullable=True),
        sa.Column("team", sa.String(253), nullable=True),
        sa.Column("user", sa.String(253), nullable=True),
        sa.Column("customer", sa.String(253), nullable=True),
        sa.Column("agent", sa.String(253), nullable=True),
        sa.Column("model", sa.String(253), nullable=True),
        sa.Column("provider", sa.String(253), nullable=True),
        sa.Column("deployment_model", sa.String(253), nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cache_read_tokens", sa.Integer, nullable=False),
        sa.Column("cache_write_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Numeric(20, 10), nullable=False),
        sa.Column("usage_source", sa.String(16), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("fallback", sa.Boolean, nullable=False),
        sa.Column("cache_hit", sa.Boolean, nullable=False),
        sa.Column("client_disconnected", sa.Boolean, nullable=False),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.UniqueConstraint("request_id", name="uq_usage_records_request_id"),
    )
    op.create_index("ix_usage_records_created_at", "usage_records", ["created_at"])
    op.create_index("ix_usage_records_team_agent", "usage_records", ["team", "agent"])


def downgrade() -> None:
    op.drop_table("usage_records")
    op.drop_table("virtual_keys")
    op.drop_table("config_generation")
    op.drop_index("ix_manifest_revisions_kind_name", table_name="manifest_revisions")
    op.drop_table("manifest_revisions")
    op.drop_table("manifests")
