"""Agents: every spec the runtime ran as a content-addressed revision, and the manifest each agent adopted.

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
# A branch of its own from the audit log's revision, beside the other wings' ("heads").
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_revisions",
        sa.Column("agent", sa.String(253), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("base_dir", sa.String(1024), nullable=True),
        sa.Column("cause", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_agent_revisions_number", "agent_revisions", ["agent", "number"])
    op.create_table(
        "agent_rollouts",
        sa.Column("agent", sa.String(253), primary_key=True),
        sa.Column("manifest_digest", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agent_rollouts")
    op.drop_index("ix_agent_revisions_number", table_name="agent_revisions")
    op.drop_table("agent_revisions")
