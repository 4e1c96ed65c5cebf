"""Tables of offline eval runs (fleetplane.evals runs, compare, gate, history; migration 0007).

A run is one suite against one target; each case x epoch has one output row (what the target answered,
its usage and cost) and one result row per dimension (the dimension's score, with every scorer's score
in `scores`). Defined on the shared `metadata`; `store.tables` imports this module.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, String, Table, Text

from fleetplane.store.tables import metadata

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("suite", String(253), nullable=False),
    Column("suite_digest", String(64), nullable=False),  # sha256 of the suite document as run
    Column("target", String(300), nullable=False),  # "model:fast", "agent:triage", "skill:summarize@1.2.0"
    Column("status", String(16), nullable=False),  # running | done | failed
    Column("trigger", String(16), nullable=False),  # manual | schedule
    Column("epochs", Integer, nullable=False),
    Column("seed", Integer, nullable=False),  # the bootstrap seed of the summary's intervals
    Column("cases", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("summary", JSON, nullable=True),  # per dimension: mean, pass rate, intervals; cost, latency
    Column("options", JSON, nullable=False),  # judge override and anything else the run was given
    Column("error", Text, nullable=True),
    Index("ix_eval_runs_suite", "suite", "started_at"),
)

eval_outputs = Table(
    "eval_outputs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("case_id", String(255), primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("output", Text, nullable=False),
    Column("error", Text, nullable=True),  # the target failed: the case scores 0 / fails
    Column("model", String(255), nullable=True),
    Column("trace_id", String(32), nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("cost_usd", Float, nullable=True),
    Column("input_tokens", Integer, nullable=True),
    Column("output_tokens", Integer, nullable=True),
)

eval_results = Table(
    "eval_results",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("case_id", String(255), primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("dimension", String(253), primary_key=True),
    Column("value", Float, nullable=False),
    Column("passed", Boolean, nullable=True),
    Column("fixture", String(255), nullable=True),
    Column("scores", JSON, nullable=False),  # every scorer: type, value, passed, explanation, cost, flags
    Column("scoring_cost_usd", Float, nullable=False),
)
