"""Names, labels and the revision digest every rendered object carries."""

from __future__ import annotations

import hashlib
import json
from typing import Any

PART_OF = "fleetplane"
AGENT_LABEL = "fleetplane.dev/agent"
REVISION_LABEL = "fleetplane.dev/revision"
# Marks the objects `fleetplane apply --target kubernetes` keeps to itself (the revision history).
ROLE_LABEL = "fleetplane.dev/role"
MANAGED_BY = {"app.kubernetes.io/managed-by": "fleetplane"}


def agent_object_name(agent: str) -> str:
    """What an agent's Deployment, Service, autoscaler, policy and budget are called."""
    return f"agent-{agent}"


def selector(component: str, instance: str) -> dict[str, str]:
    """The labels a workload's pods are selected by: never the revision (a selector is immutable)."""
    labels = {"app.kubernetes.io/name": instance, "app.kubernetes.io/component": component}
    if component == "agent":
        labels[AGENT_LABEL] = instance
    return labels


def object_labels(component: str, instance: str, revision: str) -> dict[str, str]:
    return {
        **selector(component, instance),
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/part-of": PART_OF,
        **MANAGED_BY,
        REVISION_LABEL: revision,
    }


def content_digest(value: Any) -> str:
    """The revision: a digest of the canonical JSON of what was rendered (short enough for a label)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
