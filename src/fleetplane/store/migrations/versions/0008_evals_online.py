"""Online evals and the review queue: items taken from production traffic, their scores, user feedback,
review items and labels.

Revision ID: 0008
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
# A branch of its own from the audit log's revision, beside the other wings' ("heads").
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_online_items",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("span_id", sa.String(16), primary_key=True),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("seen_at", sa.Float, nullable=False),
        sa.Column("rule", sa.String(253), nullable=True),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("agent", sa.String(255), nullable=True),
        sa.Column("team", sa.String(255), nullable=True),
        sa.Column("prompt_version", sa.String(255), nullable=True),
        sa.Column("input_digest", sa.String(64), nullable=True),
        sa.Column("sample_u", sa.Float, nullable=False),
        sa.Column("sampled", sa.Boolean, nullable=False),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("judge_status", sa.String(16), nullable=False),
        sa.Column("judge_error", sa.Text, nullable=True),
        sa.Column("subject", sa.JSON, nullable=False),
    )
    op.create_index("ix_eval_online_items_judge", "eval_online_items", ["judge_status", "start_ns"])
    op.create_index("ix_eval_online_items_start", "eval_online_items", ["start_ns"])
    op.create_table(
        "eval_online_scores",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("scorer", sa.String(64), nullable=False),
        sa.Column("dimension", sa.String(253), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=True),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("scored_at", sa.Float, nullable=False),
    )
    op.create_index("ix_eval_online_scores_item", "eval_online_scores", ["trace_id", "span_id"])
    op.create_index("ix_eval_online_scores_scorer", "eval_online_scores", ["scorer", "scored_at"])
    op.create_table(
        "eval_feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_eval_feedback_trace", "eval_feedback", ["trace_id"])
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("subject", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(255), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("assigned_at", sa.Float, nullable=True),
        sa.Column("labelled_at", sa.Float, nullable=True),
    )
    op.create_index("uq_review_items_span", "review_items", ["trace_id", "span_id"], unique=True)
    op.create_index("ix_review_items_status", "review_items", ["status", "created_at"])
    op.create_table(
        "review_labels",
        sa.Column("item_id", sa.String(32), primary_key=True),
        sa.Column("dimension", sa.String(253), primary_key=True),
        sa.Column("reviewer", sa.String(255), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "review_labels",
        "review_items",
        "eval_feedback",
        "eval_online_scores",
        "eval_online_items",
    ):
        op.drop_table(table)
