"""Offline eval runs: runs, the target's outputs per case and epoch, and scores per dimension.

Revision ID: 0007
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
# A branch of its own from the audit log's revision, beside the other wings' ("heads").
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("suite", sa.String(253), nullable=False),
        sa.Column("suite_digest", sa.String(64), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("epochs", sa.Integer, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("cases", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("summary", sa.JSON, nullable=True),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_eval_runs_suite", "eval_runs", ["suite", "started_at"])
    op.create_table(
        "eval_outputs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("case_id", sa.String(255), primary_key=True),
        sa.Column("epoch", sa.Integer, primary_key=True),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("cost_usd", sa.Float, nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=True),
        sa.Column("output_tokens", sa.Integer, nullable=True),
    )
    op.create_table(
        "eval_results",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("case_id", sa.String(255), primary_key=True),
        sa.Column("epoch", sa.Integer, primary_key=True),
        sa.Column("dimension", sa.String(253), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=True),
        sa.Column("fixture", sa.String(255), nullable=True),
        sa.Column("scores", sa.JSON, nullable=False),
        sa.Column("scoring_cost_usd", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("eval_results")
    op.drop_table("eval_outputs")
    op.drop_index("ix_eval_runs_suite", table_name="eval_runs")
    op.drop_table("eval_runs")
