"""Sinks: where a finished run's result goes — an HTTP endpoint, a file, a store table. Each delivery
carries the sink's idempotency key (run id + "sink:<name>"), so a delivery repeated after a crash between
sending and recording lands once: HTTP receivers get it as `Idempotency-Key`, the table keys its row by
it, and a file is written whole under its name (the same bytes again change nothing).

The audit sink is not configured here: every run's start and end go to the audit log regardless.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import httpx
import orjson

from fleetplane.manifests.pipeline import Sink
from fleetplane.pipelines.sql import insert_ignore
from fleetplane.store.db import Store
from fleetplane.store.tables import pipeline_sink_rows
from fleetplane.telemetry.propagation import inject_headers

SINK_ROOT_ENV = "FLEETPLANE_SINK_ROOT"  # where file sinks write; default <FLEETPLANE_HOME>/sinks


class SinkError(Exception):
    """A delivery that did not happen; the message says where and why."""


def sink_root() -> Path:
    explicit = os.environ.get(SINK_ROOT_ENV)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("FLEETPLANE_HOME", ".fleetplane")) / "sinks"


async def deliver(
    sink: Sink,
    rendered: Any,
    *,
    key: str,
    run_id: str,
    pipeline: str,
    store: Store,
    http: httpx.AsyncClient,
    root: Path,
    now: float,
) -> dict[str, Any]:
    """Send one sink's rendered target; returns what to journal about the delivery."""
    if sink.http is not None:
        headers = {"content-type": "application/json", "idempotency-key": key, **inject_headers()}
        headers.update(rendered.get("headers") or {})
        try:
            response = await http.request(
                sink.http.method, rendered["url"], content=orjson.dumps(rendered.get("body")), headers=headers
            )
        except httpx.HTTPError as exc:
            raise SinkError(f"sink {sink.name}: {rendered['url']} is unreachable: {exc}") from exc
        if response.status_code >= 300:
            raise SinkError(f"sink {sink.name}: {rendered['url']} answered {response.status_code}")
        return {"status": response.status_code}
    if sink.file is not None:
        path = _inside(root, str(rendered["path"]), sink.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_whole(path, orjson.dumps(rendered.get("body"), option=orjson.OPT_INDENT_2))
        return {"path": str(path)}
    assert sink.table is not None
    async with store.engine.begin() as conn:
        inserted = await insert_ignore(
            conn,
            pipeline_sink_rows,
            {
                "table_name": sink.table.name,
                "key": key,
                "run_id": run_id,
                "pipeline": pipeline,
                "data": rendered.get("row"),
                "created_at": now,
            },
        )
    return {"table": sink.table.name, "inserted": inserted}


def _inside(root: Path, relative: str, name: str) -> Path:
    resolved_root = root.resolve()
    path = (resolved_root / relative).resolve()
    if not path.is_relative_to(resolved_root):
        raise SinkError(f"sink {name}: the path {relative!r} leaves the sink directory {resolved_root}")
    return path


def _write_whole(path: Path, body: bytes) -> None:
    """Write to a temporary file beside it and rename: a reader never sees half a file."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
