"""The skills wing's tables (migration 0004): published versions, what serves each skill, the history of
promotions and the registry's settings. The archives themselves are files, content-addressed under
`$FLEETPLANE_HOME/skills/`; a row names its archive by digest.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table

from fleetplane.store.tables import metadata

# One row per published name@version. `contract` is the skill's contract as JSON (what `list`, `show` and
# `outdated` read without opening the archive); `eval_*` the last eval run of the version, if any.
skill_versions = Table(
    "skill_versions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("version", String(128), primary_key=True),
    Column("digest", String(71), nullable=False),
    Column("size", Integer, nullable=False),
    Column("files", Integer, nullable=False),
    Column("signer", String(64), nullable=True),
    Column("contract", JSON, nullable=False),
    Column("eval_score", Float, nullable=True),
    Column("eval_threshold", Float, nullable=True),
    Column("eval_report", JSON, nullable=True),
    Column("published_at", Float, nullable=False),
    Column("published_by", String(255), nullable=False),
    Index("ix_skill_versions_digest", "digest"),
)

# What serves each skill: the stable version, an optional canary (a share of runs by run id hash) and the
# version a rollback returns to. `generation` grows with every change.
skill_channels = Table(
    "skill_channels",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("version", String(128), nullable=False),
    Column("digest", String(71), nullable=False),
    Column("previous_version", String(128), nullable=True),
    Column("canary_version", String(128), nullable=True),
    Column("canary_percent", Integer, nullable=False, server_default="0"),
    Column("generation", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(255), nullable=False),
)

# Every promote and rollback, in order (the audit log holds the same, hash-chained; this is for reading).
skill_promotions = Table(
    "skill_promotions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # promote | canary | rollback
    Column("version", String(128), nullable=False),
    Column("from_version", String(128), nullable=True),
    Column("canary_percent", Integer, nullable=False, server_default="0"),
    Column("reason", String(1024), nullable=False),
    Column("at", Float, nullable=False),
    Column("actor", String(255), nullable=False),
    Index("ix_skill_promotions_name", "name", "id"),
)

# Registry settings by key: `require_signed` (the signing policy).
skill_settings = Table(
    "skill_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(255), nullable=False),
)
