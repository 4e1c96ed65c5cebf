"""Tables of online evals and the human review queue (fleetplane.evals.online / .review; migration 0008).

Defined on the shared `metadata`; `store.tables` imports this module so every table is known in one place.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Float, Index, Integer, String, Table, Text

from fleetplane.store.tables import metadata

# One row per production GenAI span the online evaluator took: claiming it is inserting this row, so two
# server replicas never score the same span twice. `subject` keeps what the judge and reviewers read.
eval_online_items = Table(
    "eval_online_items",
    metadata,
    Column("trace_id", String(32), primary_key=True),
    Column("span_id", String(16), primary_key=True),
    Column("start_ns", BigInteger, nullable=False),
    Column("seen_at", Float, nullable=False),
    Column("rule", String(253), nullable=True),  # the sampling rule that matched it
    Column("model", String(255), nullable=True),
    Column("agent", String(255), nullable=True),
    Column("team", String(255), nullable=True),
    Column("prompt_version", String(255), nullable=True),
    Column("input_digest", String(64), nullable=True),  # sha256 of the input text: pairs A/B answers
    Column("sample_u", Float, nullable=False),  # where the trace id hashes to in [0, 1)
    Column("sampled", Boolean, nullable=False),  # in the judge sample of its rule
    Column("flags", JSON, nullable=False),  # why it goes to the judge beyond the sample
    # none | due | judging | done | failed | refused (same-family judge without override)
    Column("judge_status", String(16), nullable=False),
    Column("judge_error", Text, nullable=True),
    Column("subject", JSON, nullable=False),  # {input, output, finish_reason, error_type}
    Index("ix_eval_online_items_judge", "judge_status", "start_ns"),
    Index("ix_eval_online_items_start", "start_ns"),
)

# Every score of an online item, cheap tier and judge tier, with what scoring it cost.
eval_online_scores = Table(
    "eval_online_scores",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("scorer", String(64), nullable=False),
    Column("dimension", String(253), nullable=False),
    Column("tier", String(16), nullable=False),  # the scorer's tier: heuristic, judge, human ...
    Column("value", Float, nullable=False),
    Column("passed", Boolean, nullable=True),
    Column("explanation", Text, nullable=False),
    Column("flags", JSON, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("details", JSON, nullable=False),
    Column("scored_at", Float, nullable=False),
    Index("ix_eval_online_scores_item", "trace_id", "span_id"),
    Index("ix_eval_online_scores_scorer", "scorer", "scored_at"),
)

# User feedback on an answer (thumbs, a rating in [0, 1]); negative feedback sends the item to the judge.
eval_feedback = Table(
    "eval_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", String(32), nullable=False),
    Column("value", Float, nullable=False),
    Column("comment", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_eval_feedback_trace", "trace_id"),
)

# The human review queue: flagged and judge-uncertain items and a random audit slice.
review_items = Table(
    "review_items",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("source", String(16), nullable=False),  # flagged | uncertain | audit
    Column("reasons", JSON, nullable=False),
    Column("subject", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # open | assigned | labelled
    Column("assignee", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("assigned_at", Float, nullable=True),
    Column("labelled_at", Float, nullable=True),
    Index("uq_review_items_span", "trace_id", "span_id", unique=True),
    Index("ix_review_items_status", "status", "created_at"),
)

# A reviewer's label of one item on one dimension (a value in [0, 1]) with a comment.
review_labels = Table(
    "review_labels",
    metadata,
    Column("item_id", String(32), primary_key=True),
    Column("dimension", String(253), primary_key=True),
    Column("reviewer", String(255), primary_key=True),
    Column("value", Float, nullable=False),
    Column("comment", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)
