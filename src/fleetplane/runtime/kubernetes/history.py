"""Each agent's revision history, kept in the cluster beside it: a ConfigMap with the objects of every
revision applied (Secrets excluded: their values are not part of a revision), newest last."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fleetplane.runtime.kubernetes.cluster import api_error, resource_class, status_code, to_resource
from fleetplane.runtime.kubernetes.labels import (
    AGENT_LABEL,
    MANAGED_BY,
    PART_OF,
    ROLE_LABEL,
    agent_object_name,
)

KEY = "history.json"


@dataclass(frozen=True)
class Entry:
    revision: str
    objects: list[dict[str, Any]]


def history_name(agent: str) -> str:
    return f"{agent_object_name(agent)}-history"


def read_history(client: Any, agent: str, namespace: str) -> list[Entry]:
    """Oldest first; empty when the agent was never applied."""
    config_map = resource_class("v1", "ConfigMap")
    try:
        found = client.get(config_map, history_name(agent), namespace=namespace)
    except api_error() as exc:
        if status_code(exc) == 404:
            return []
        raise
    raw = json.loads((found.data or {}).get(KEY, "[]"))
    return [Entry(e["revision"], e["objects"]) for e in raw]


def record(
    client: Any, agent: str, namespace: str, revision: str, objects: list[dict[str, Any]], *, limit: int
) -> bool:
    """Append `revision` unless it is already the newest; keep the last `limit`. True when appended."""
    entries = read_history(client, agent, namespace)
    if entries and entries[-1].revision == revision:
        return False
    kept = [o for o in objects if o.get("kind") != "Secret"]
    entries = [*entries, Entry(revision, kept)][-max(limit, 2) :]
    body = json.dumps([{"revision": e.revision, "objects": e.objects} for e in entries], sort_keys=True)
    client.apply(
        to_resource(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": history_name(agent),
                    "namespace": namespace,
                    "labels": {
                        **MANAGED_BY,
                        "app.kubernetes.io/part-of": PART_OF,
                        AGENT_LABEL: agent,
                        ROLE_LABEL: "history",
                    },
                },
                "data": {KEY: body},
            }
        ),
        force=True,
    )
    return True
