"""A fleet directory as Kubernetes objects: every Agent's workload, the runtime classes its isolation
tiers need, and the gateway; deterministic (sorted keys, stable names, stable order)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetplane.manifests.agent import MINIMUM_TIER, Agent
from fleetplane.manifests.desired import DesiredState
from fleetplane.runtime.kubernetes import pod
from fleetplane.runtime.kubernetes.agent import render_agent
from fleetplane.runtime.kubernetes.gateway import render_gateway
from fleetplane.runtime.kubernetes.images import agent_image, pin_problem
from fleetplane.runtime.kubernetes.labels import (
    AGENT_LABEL,
    MANAGED_BY,
    PART_OF,
    REVISION_LABEL,
    content_digest,
)
from fleetplane.runtime.kubernetes.options import RenderOptions

# The order objects are written and applied in: what others reference comes first.
KIND_ORDER = (
    "RuntimeClass",
    "Secret",
    "ConfigMap",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "ScaledObject",
    "NetworkPolicy",
    "PodDisruptionBudget",
)


class RenderError(ValueError):
    """The fleet cannot be rendered; `problems` names each Agent and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Rendered:
    objects: list[dict[str, Any]]
    revisions: dict[str, str] = field(default_factory=dict)  # agent -> revision
    warnings: list[str] = field(default_factory=list)

    def of_agent(self, agent: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["metadata"].get("labels", {}).get(AGENT_LABEL) == agent]


def ref(obj: dict[str, Any]) -> str:
    """`Kind/name`, how an object is named in messages."""
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def sort_key(obj: dict[str, Any]) -> tuple[int, str, str]:
    kind = obj.get("kind", "")
    position = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return position, kind, obj.get("metadata", {}).get("name", "")


def render_fleet(desired: DesiredState, options: RenderOptions) -> Rendered:
    """Every object of the fleet, or `RenderError` naming each problem (an image not pinned ...)."""
    problems: list[str] = []
    warnings: list[str] = []
    objects: list[dict[str, Any]] = []
    revisions: dict[str, str] = {}
    tiers: set[str] = set()
    for agent in sorted(desired.of_kind(Agent), key=lambda a: a.name):
        image, where = agent_image(agent, options)
        problem = pin_problem(image, where)
        if problem is not None:
            if image is None and agent.spec.run is not None:
                problem += (
                    ": a bring-your-own agent names its image in metadata.annotations"
                    "['fleetplane.dev/image'] (repo@sha256:...)"
                )
            elif image is None:
                problem += ": declarative agents run the fleetplane image (--runner-image or --gateway-image)"
            problems.append(problem)
            continue
        assert image is not None
        rendered = render_agent(agent, image, options, warnings)
        revisions[agent.name] = rendered[0]["metadata"]["labels"][REVISION_LABEL]
        objects.extend(rendered)
        tiers.add(agent.spec.isolation or MINIMUM_TIER[agent.spec.trust])
    gateway_problem = pin_problem(options.gateway_image, "the gateway image (--gateway-image)")
    if gateway_problem is not None:
        problems.append(gateway_problem)
    if problems:
        raise RenderError(problems)
    assert options.gateway_image is not None
    objects.extend(render_gateway(desired, options.gateway_image, options))
    objects.extend(_runtime_class(tier) for tier in sorted(tiers) if tier in pod.RUNTIME_CLASSES)
    return Rendered(sorted(objects, key=sort_key), revisions, warnings)


def _runtime_class(tier: str) -> dict[str, Any]:
    spec = pod.RUNTIME_CLASSES[tier]
    body: dict[str, Any] = {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "handler": spec["handler"],
        "overhead": {"podFixed": dict(spec["overhead"])},
    }
    labels = {"app.kubernetes.io/part-of": PART_OF, **MANAGED_BY, REVISION_LABEL: content_digest(body)}
    return {**body, "metadata": {"name": spec["name"], "labels": labels}}


class _PlainDumper(yaml.SafeDumper):
    """No &anchors/*aliases for the dicts objects share (labels, selectors): each file reads alone."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(obj: dict[str, Any]) -> str:
    return yaml.dump(obj, Dumper=_PlainDumper, sort_keys=True, allow_unicode=True, default_flow_style=False)


def file_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def write_objects(objects: list[dict[str, Any]], out: Path, *, single_file: bool = False) -> list[Path]:
    """One YAML file per object under `out` (stale fleetplane files removed), or one multi-document file."""
    if single_file:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("---\n".join(dump(o) for o in objects), encoding="utf-8")
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    wanted = {file_name(o): o for o in objects}
    for stale in out.glob("*.yaml"):
        # Only files a render wrote before (same naming, a kind we render) are ours to remove.
        if stale.name not in wanted and stale.name.split("-", 1)[0] in {k.lower() for k in KIND_ORDER}:
            stale.unlink()
    paths = []
    for name, obj in wanted.items():
        path = out / name
        path.write_text(dump(obj), encoding="utf-8")
        paths.append(path)
    return paths


def load_objects(path: Path) -> list[dict[str, Any]]:
    """Objects back from what `write_objects` wrote (a directory or one file)."""
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    objects: list[dict[str, Any]] = []
    for file in files:
        objects.extend(d for d in yaml.safe_load_all(file.read_text(encoding="utf-8")) if d)
    return sorted(objects, key=sort_key)
