"""Telemetry: the span store's spans and events (log records, captured content).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SPAN_INDEXES = {
    "ix_telemetry_spans_start": ["start_ns"],
    "ix_telemetry_spans_agent": ["agent", "start_ns"],
    "ix_telemetry_spans_team": ["team", "start_ns"],
    "ix_telemetry_spans_request_model": ["request_model", "start_ns"],
    "ix_telemetry_spans_response_model": ["response_model", "start_ns"],
    "ix_telemetry_spans_operation": ["operation", "start_ns"],
    "ix_telemetry_spans_sample": ["sample_key"],
}


def upgrade() -> None:
    label = sa.String(255)
    op.create_table(
        "telemetry_spans",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("span_id", sa.String(16), primary_key=True),
        sa.Column("parent_span_id", sa.String(16), nullable=True),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("status_code", sa.String(8), nullable=False),
        sa.Column("status_message", sa.Text, nullable=True),
        sa.Column("service_name", label, nullable=True),
        sa.Column("operation", label, nullable=True),
        sa.Column("agent", label, nullable=True),
        sa.Column("request_model", label, nullable=True),
        sa.Column("response_model", label, nullable=True),
        sa.Column("provider", label, nullable=True),
        sa.Column("organization", label, nullable=True),
        sa.Column("team", label, nullable=True),
        sa.Column("customer", label, nullable=True),
        sa.Column("user", label, nullable=True),
        sa.Column("key", label, nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=True),
        sa.Column("output_tokens", sa.BigInteger, nullable=True),
        sa.Column("cost_usd", sa.Numeric(20, 10), nullable=True),
        sa.Column("error_type", label, nullable=True),
        sa.Column("prompt_name", label, nullable=True),
        sa.Column("prompt_version", label, nullable=True),
        sa.Column("conversation_id", label, nullable=True),
        sa.Column("finish_reasons", sa.JSON, nullable=True),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("links", sa.JSON, nullable=False),
        sa.Column("resource", sa.JSON, nullable=False),
        sa.Column("scope_name", label, nullable=True),
        sa.Column("scope_version", label, nullable=True),
        sa.Column("sample_key", sa.BigInteger, nullable=False),
    )
    for name, columns in SPAN_INDEXES.items():
        op.create_index(name, "telemetry_spans", columns)
    op.create_table(
        "telemetry_events",
        sa.Column("event_id", sa.String(32), primary_key=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("span_id", sa.String(16), nullable=True),
        sa.Column("time_ns", sa.BigInteger, nullable=False),
        sa.Column("observed_ns", sa.BigInteger, nullable=False),
        sa.Column("event_name", label, nullable=True),
        sa.Column("severity_number", sa.Integer, nullable=True),
        sa.Column("severity_text", label, nullable=True),
        sa.Column("body", sa.JSON, nullable=True),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("resource", sa.JSON, nullable=False),
        sa.Column("scope_name", label, nullable=True),
        sa.Column("service_name", label, nullable=True),
    )
    op.create_index("ix_telemetry_events_trace", "telemetry_events", ["trace_id", "span_id"])
    op.create_index("ix_telemetry_events_time", "telemetry_events", ["time_ns"])


def downgrade() -> None:
    op.drop_index("ix_telemetry_events_time", table_name="telemetry_events")
    op.drop_index("ix_telemetry_events_trace", table_name="telemetry_events")
    op.drop_table("telemetry_events")
    for name in SPAN_INDEXES:
        op.drop_index(name, table_name="telemetry_spans")
    op.drop_table("telemetry_spans")
