"""Pipelines: plans, runs, the step journal and its outputs, approvals, the reasoning trace, sink rows and
MCP tool pins.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
# A branch of its own from the audit log's revision: other wings add theirs beside it ("heads").
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_plans",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("pipeline", sa.String(253), nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("pipeline", sa.String(253), nullable=False),
        sa.Column("plan_digest", sa.String(64), nullable=False),
        sa.Column("lock", sa.JSON, nullable=False),
        sa.Column("input", sa.JSON, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("dedupe_key", sa.String(255), nullable=True),
        sa.Column("traceparent", sa.String(64), nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("root_span_id", sa.String(16), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("lease_epoch", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attention", sa.JSON, nullable=True),
        sa.Column("output_digest", sa.String(64), nullable=True),
        sa.Column("journal_pruned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("pipeline", "dedupe_key", name="uq_pipeline_runs_dedupe"),
    )
    op.create_index("ix_pipeline_runs_status", "pipeline_runs", ["status", "lease_until"])
    op.create_index("ix_pipeline_runs_pipeline", "pipeline_runs", ["pipeline", "created_at"])
    op.create_index("ix_pipeline_runs_finished", "pipeline_runs", ["finished_at"])
    op.create_table(
        "pipeline_steps",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("step_key", sa.String(255), primary_key=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("skill", sa.String(255), nullable=True),
        sa.Column("input_hash", sa.String(64), nullable=True),
        sa.Column("output_digest", sa.String(64), nullable=True),
        sa.Column("reconciled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
    )
    op.create_table(
        "pipeline_outputs",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("body", sa.JSON, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "pipeline_approvals",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("pipeline", sa.String(253), nullable=False),
        sa.Column("gate", sa.String(512), nullable=False),
        sa.Column("step_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tool", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("arguments", sa.JSON, nullable=True),
        sa.Column("arguments_hash", sa.String(64), nullable=False),
        sa.Column("approved", sa.JSON, nullable=True),
        sa.Column("approved_hash", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("on_timeout", sa.String(16), nullable=False),
        sa.Column("decided_at", sa.Float, nullable=True),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.UniqueConstraint("run_id", "gate", name="uq_pipeline_approvals_gate"),
    )
    op.create_index("ix_pipeline_approvals_status", "pipeline_approvals", ["status", "expires_at"])
    op.create_table(
        "pipeline_trace",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("step_key", sa.String(255), nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.UniqueConstraint("run_id", "key", name="uq_pipeline_trace_key"),
    )
    op.create_table(
        "pipeline_sink_rows",
        sa.Column("table_name", sa.String(253), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("pipeline", sa.String(253), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "pipeline_tool_pins",
        sa.Column("pipeline", sa.String(253), primary_key=True),
        sa.Column("server", sa.String(253), primary_key=True),
        sa.Column("tool", sa.String(255), primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("pinned_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pipeline_tool_pins")
    op.drop_table("pipeline_sink_rows")
    op.drop_table("pipeline_trace")
    op.drop_index("ix_pipeline_approvals_status", table_name="pipeline_approvals")
    op.drop_table("pipeline_approvals")
    op.drop_table("pipeline_outputs")
    op.drop_table("pipeline_steps")
    for index in ("ix_pipeline_runs_finished", "ix_pipeline_runs_pipeline", "ix_pipeline_runs_status"):
        op.drop_index(index, table_name="pipeline_runs")
    op.drop_table("pipeline_runs")
    op.drop_table("pipeline_plans")
