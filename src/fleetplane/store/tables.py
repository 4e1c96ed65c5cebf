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
    Text,
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

# Telemetry (fleetplane.telemetry.spanstore). Times are UNIX nanoseconds, as OTLP carries them; ids hex.
# (trace_id, span_id) is the key: an exporter's retry stores nothing twice, and a trace reads by prefix.
telemetry_spans = Table(
    "telemetry_spans",
    metadata,
    Column("trace_id", String(32), primary_key=True),
    Column("span_id", String(16), primary_key=True),
    Column("parent_span_id", String(16), nullable=True),
    Column("name", String(1024), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("status_code", String(8), nullable=False),  # unset | ok | error
    Column("status_message", Text, nullable=True),
    # Facts lifted from the attributes for filters and sums (fleetplane.telemetry.records.LIFTED).
    Column("service_name", String(255), nullable=True),
    Column("operation", String(255), nullable=True),
    Column("agent", String(255), nullable=True),
    Column("request_model", String(255), nullable=True),
    Column("response_model", String(255), nullable=True),
    Column("provider", String(255), nullable=True),
    Column("organization", String(255), nullable=True),
    Column("team", String(255), nullable=True),
    Column("customer", String(255), nullable=True),
    Column("user", String(255), nullable=True),
    Column("key", String(255), nullable=True),
    Column("input_tokens", BigInteger, nullable=True),
    Column("output_tokens", BigInteger, nullable=True),
    Column("cost_usd", Numeric(20, 10), nullable=True),
    Column("error_type", String(255), nullable=True),
    Column("prompt_name", String(255), nullable=True),
    Column("prompt_version", String(255), nullable=True),
    Column("conversation_id", String(255), nullable=True),
    Column("finish_reasons", JSON, nullable=True),
    Column("attributes", JSON, nullable=False),
    Column("events", JSON, nullable=False),
    Column("links", JSON, nullable=False),
    Column("resource", JSON, nullable=False),
    Column("scope_name", String(255), nullable=True),
    Column("scope_version", String(255), nullable=True),
    # The first 63 bits of sha256(trace_id): a trace is in a sample at rate r when this < r * 2**63.
    Column("sample_key", BigInteger, nullable=False),
    Index("ix_telemetry_spans_start", "start_ns"),
    Index("ix_telemetry_spans_agent", "agent", "start_ns"),
    Index("ix_telemetry_spans_team", "team", "start_ns"),
    Index("ix_telemetry_spans_request_model", "request_model", "start_ns"),
    Index("ix_telemetry_spans_response_model", "response_model", "start_ns"),
    Index("ix_telemetry_spans_operation", "operation", "start_ns"),
    Index("ix_telemetry_spans_sample", "sample_key"),
)

# Log records and events (captured message content among them), keyed by a digest of the whole record.
telemetry_events = Table(
    "telemetry_events",
    metadata,
    Column("event_id", String(32), primary_key=True),
    Column("trace_id", String(32), nullable=True),
    Column("span_id", String(16), nullable=True),
    Column("time_ns", BigInteger, nullable=False),
    Column("observed_ns", BigInteger, nullable=False),
    Column("event_name", String(255), nullable=True),
    Column("severity_number", Integer, nullable=True),
    Column("severity_text", String(255), nullable=True),
    Column("body", JSON, nullable=True),
    Column("attributes", JSON, nullable=False),
    Column("resource", JSON, nullable=False),
    Column("scope_name", String(255), nullable=True),
    Column("service_name", String(255), nullable=True),
    Index("ix_telemetry_events_trace", "trace_id", "span_id"),
    Index("ix_telemetry_events_time", "time_ns"),
)

# The audit log: append-only and hash-chained. Each entry's hash covers its content and the previous
# entry's hash, so editing or removing any entry breaks every hash after it (`fleetplane audit verify`).
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", Float, nullable=False),
    Column("kind", String(64), nullable=False),  # skill.publish, skill.promote, approval.decide, ...
    Column("subject", String(512), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_kind", "kind", "seq"),
)

# The audit log's head (one row), written with every append: removing the newest entries is caught too.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# --- pipelines (fleetplane.pipelines; migration 0005) ---------------------------------------------------
# A compiled plan, by the sha256 of its canonical JSON: a run names the digest it started with and a resume
# reads exactly that plan, whatever was applied since.
pipeline_plans = Table(
    "pipeline_plans",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("pipeline", String(253), nullable=False),
    Column("plan", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

# One row per run: what it pinned at start (plan digest, skill lock, tool pins), its trace, its lease.
pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(253), nullable=False),
    Column("plan_digest", String(64), nullable=False),
    Column("lock", JSON, nullable=False),  # "name@constraint" -> {name, version, digest}
    Column("input", JSON, nullable=False),
    # pending | running | waiting_approval | needs_attention | succeeded | failed | cancelled
    Column("status", String(24), nullable=False),
    Column("trigger", String(16), nullable=False),  # webhook | schedule | manual
    Column("dedupe_key", String(255), nullable=True),
    Column("traceparent", String(64), nullable=True),  # the trigger's caller, if it sent one
    Column("trace_id", String(32), nullable=True),
    Column("root_span_id", String(16), nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("lease_epoch", Integer, nullable=False, default=0),  # fencing token: bumped by every take-over
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("attention", JSON, nullable=True),  # what a person must decide (needs_attention)
    Column("output_digest", String(64), nullable=True),
    Column("journal_pruned", Boolean, nullable=False, default=False),
    UniqueConstraint("pipeline", "dedupe_key", name="uq_pipeline_runs_dedupe"),
    Index("ix_pipeline_runs_status", "status", "lease_until"),
    Index("ix_pipeline_runs_pipeline", "pipeline", "created_at"),
    Index("ix_pipeline_runs_finished", "finished_at"),
)

# The journal: one row per step execution key (step id + loop index). The intent is written before the
# step runs, the output's digest when it commits; a resume replays committed rows and never re-runs them.
pipeline_steps = Table(
    "pipeline_steps",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("step_key", String(255), primary_key=True),  # "refund", "notify[3]", "sink:audit-http"
    Column("node", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # context | route | step | validate | sink
    Column("state", String(16), nullable=False),  # intent | committed | skipped | failed | paused
    Column("attempt", Integer, nullable=False),
    Column("idempotency_key", String(64), nullable=False),
    Column("skill", String(255), nullable=True),  # name@version actually run
    Column("input_hash", String(64), nullable=True),
    Column("output_digest", String(64), nullable=True),
    Column("reconciled", Boolean, nullable=False, default=False),
    Column("error", Text, nullable=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
)

# Step outputs, content-addressed (sha256 of canonical JSON): equal outputs are stored once.
pipeline_outputs = Table(
    "pipeline_outputs",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("body", JSON, nullable=True),
    Column("created_at", Float, nullable=False),
)

# Approval gates: a step, a tool call or a guardrail verdict waiting for a person. `gate` names what is
# gated within the run; the arguments are bound by hash (a resume with other arguments is refused).
pipeline_approvals = Table(
    "pipeline_approvals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("pipeline", String(253), nullable=False),
    Column("gate", String(512), nullable=False),
    Column("step_key", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # step | tool | guardrail
    Column("tool", String(255), nullable=True),
    Column("status", String(16), nullable=False),  # pending | approved | rejected | expired
    Column("arguments", JSON, nullable=True),
    Column("arguments_hash", String(64), nullable=False),
    Column("approved", JSON, nullable=True),  # the arguments as approved (edited or not)
    Column("approved_hash", String(64), nullable=True),
    Column("reason", Text, nullable=True),
    Column("requested_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("on_timeout", String(16), nullable=False),
    Column("decided_at", Float, nullable=True),
    Column("decided_by", String(255), nullable=True),
    UniqueConstraint("run_id", "gate", name="uq_pipeline_approvals_gate"),
    Index("ix_pipeline_approvals_status", "status", "expires_at"),
)

# The reasoning trace: router decisions, conditions with their inputs, model and tool calls, guardrail
# verdicts. `key` makes a record idempotent (a replay that passes the same point records nothing new).
pipeline_trace = Table(
    "pipeline_trace",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),  # route | condition | llm | tool | guardrail | ...
    Column("step_key", String(255), nullable=True),
    Column("data", JSON, nullable=False),
    UniqueConstraint("run_id", "key", name="uq_pipeline_trace_key"),
)

# Rows written by `table` sinks, keyed by the sink's key: a replayed sink inserts nothing twice.
pipeline_sink_rows = Table(
    "pipeline_sink_rows",
    metadata,
    Column("table_name", String(253), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("pipeline", String(253), nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

# MCP tool definitions pinned by the hash of {name, description, inputSchema}: a changed definition is
# refused until a person pins it again (a "rug pull" after approval).
pipeline_tool_pins = Table(
    "pipeline_tool_pins",
    metadata,
    Column("pipeline", String(253), primary_key=True),
    Column("server", String(253), primary_key=True),
    Column("tool", String(255), primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("pinned_at", Float, nullable=False),
)

# --- agents (fleetplane.runtime; migration 0006) --------------------------------------------------------
# Every Agent spec the runtime ran, content-addressed (sha256 of the spec's canonical JSON). `number`
# orders the history: re-running an older spec (an undo) gives its row the next number, as Kubernetes
# does with a ReplicaSet's revision, so the highest number is what should run.
agent_revisions = Table(
    "agent_revisions",
    metadata,
    Column("agent", String(253), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("number", Integer, nullable=False),
    Column("document", JSON, nullable=False),  # the whole Agent manifest
    Column("base_dir", String(1024), nullable=True),  # where its relative paths (workdir, rootfs) start
    Column("cause", String(16), nullable=False),  # apply | undo
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_agent_revisions_number", "agent", "number"),
)

# Per agent: the applied manifest digest last adopted as a revision. An undo leaves it as it is, so the
# broken spec still applied is not adopted again until a different one is applied (drift is reported).
agent_rollouts = Table(
    "agent_rollouts",
    metadata,
    Column("agent", String(253), primary_key=True),
    Column("manifest_digest", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Online evals and the review queue (migration 0008): defined in their own module, on this metadata.
from fleetplane.store import evals_online as _evals_online  # noqa: E402, F401

# Offline eval runs, their outputs and scores (migration 0007): in their own module, on this metadata.
from fleetplane.store import evals_runs as _evals_runs  # noqa: E402, F401
