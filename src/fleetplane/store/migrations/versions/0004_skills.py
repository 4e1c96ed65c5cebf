"""Skills: published versions, serving channels (stable, canary, rollback target), promotion history and
registry settings (the signing policy).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
# A branch of its own from the audit log's revision: other wings add theirs beside it ("heads").
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "skill_versions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(128), primary_key=True),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("files", sa.Integer, nullable=False),
        sa.Column("signer", sa.String(64), nullable=True),
        sa.Column("contract", sa.JSON, nullable=False),
        sa.Column("eval_score", sa.Float, nullable=True),
        sa.Column("eval_threshold", sa.Float, nullable=True),
        sa.Column("eval_report", sa.JSON, nullable=True),
        sa.Column("published_at", sa.Float, nullable=False),
        sa.Column("published_by", sa.String(255), nullable=False),
    )
    op.create_index("ix_skill_versions_digest", "skill_versions", ["digest"])
    op.create_table(
        "skill_channels",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("previous_version", sa.String(128), nullable=True),
        sa.Column("canary_version", sa.String(128), nullable=True),
        sa.Column("canary_percent", sa.Integer, nullable=False, server_default="0"),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "skill_promotions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("from_version", sa.String(128), nullable=True),
        sa.Column("canary_percent", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
    )
    op.create_index("ix_skill_promotions_name", "skill_promotions", ["name", "id"])
    op.create_table(
        "skill_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_index("ix_skill_promotions_name", table_name="skill_promotions")
    op.drop_table("skill_settings")
    op.drop_table("skill_promotions")
    op.drop_table("skill_channels")
    op.drop_index("ix_skill_versions_digest", table_name="skill_versions")
    op.drop_table("skill_versions")
