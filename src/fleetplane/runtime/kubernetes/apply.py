"""Server-side apply of a rendered fleet: objects in dependency order, Secrets filled from their sources
at apply time (never from a file), each agent's revision recorded, and what fleetplane applied before
but no longer renders pruned."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetplane.manifests.agent import Agent
from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.fields import SecretRef
from fleetplane.manifests.secrets import SecretUnavailable, read_secret
from fleetplane.manifests.virtual_key import VirtualKey
from fleetplane.runtime.kubernetes import gateway
from fleetplane.runtime.kubernetes.agent import VIRTUAL_KEY, secrets_name, virtual_key_name
from fleetplane.runtime.kubernetes.cluster import (
    ClusterError,
    api_error,
    describe,
    resource_class,
    status_code,
    to_resource,
)
from fleetplane.runtime.kubernetes.history import record
from fleetplane.runtime.kubernetes.labels import AGENT_LABEL, MANAGED_BY, ROLE_LABEL
from fleetplane.runtime.kubernetes.render import KIND_ORDER, Rendered, ref

# The namespaced kinds fleetplane renders, with their API versions: what a prune looks through.
PRUNABLE = {
    "Secret": "v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "ScaledObject": "keda.sh/v1alpha1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "PodDisruptionBudget": "policy/v1",
}


@dataclass
class SecretValues:
    """Secret name -> key -> value, and why any value could not be read (never the value)."""

    values: dict[str, dict[str, str]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


@dataclass
class ApplyReport:
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    # Secrets not written because a value could not be read: pods that mount them wait (fail closed).
    skipped: dict[str, str] = field(default_factory=dict)
    recorded: list[str] = field(default_factory=list)  # agents with a new revision in their history


def read_secret_values(
    desired: DesiredState, *, store_urls: Mapping[str, str | None], environ: Mapping[str, str] | None = None
) -> SecretValues:
    """Every rendered Secret's values from where the manifests say they live: the agent's secrets (host
    env or file), its VirtualKey's secretRef, and the gateway's Redis/Postgres URLs."""
    out = SecretValues()

    def put(secret: str, key: str, ref: SecretRef, base: Any) -> None:
        try:
            out.values.setdefault(secret, {})[key] = read_secret(ref, base_dir=base, environ=environ)
        except SecretUnavailable as exc:
            out.missing[secret] = f"{key}: {exc}"

    keys = {k.spec.agent: k for k in desired.of_kind(VirtualKey) if k.spec.agent}
    for agent in desired.of_kind(Agent):
        for secret in agent.spec.secrets:
            put(
                secrets_name(agent.name),
                secret.name,
                SecretRef(env=secret.env, file=secret.file),
                desired.base_dir(agent),
            )
        key = keys.get(agent.name)
        if key is not None and key.spec.secret_ref is not None:
            put(virtual_key_name(agent.name), VIRTUAL_KEY, key.spec.secret_ref, desired.base_dir(key))
        else:
            out.missing[virtual_key_name(agent.name)] = (
                f"no VirtualKey with agent: {agent.name} and a secretRef; create the Secret with "
                f"kubectl create secret generic {virtual_key_name(agent.name)} "
                f"--from-literal={VIRTUAL_KEY}=..."
            )
    urls = {k: v for k, v in store_urls.items() if v is not None and v}
    if set(urls) == set(gateway.STORE_KEYS.values()):
        out.values[gateway.STORE_SECRET] = urls
    else:
        out.missing[gateway.STORE_SECRET] = "pass --redis-url and --database-url"
    for secret_name in list(out.missing):
        out.values.pop(secret_name, None)  # a Secret is written whole or not at all
    return out


def apply_rendered(
    client: Any,
    rendered: Rendered,
    *,
    namespace: str,
    secrets: SecretValues,
    prune: bool = True,
    history_limit: int = 10,
) -> ApplyReport:
    """Apply every object (server-side, forcing fleetplane's ownership), record revisions, prune."""
    report = ApplyReport()
    for obj in rendered.objects:
        if obj["kind"] == "Secret":
            name = obj["metadata"]["name"]
            if name not in secrets.values:
                # Applying it without data would strip the values someone else put there.
                report.skipped[name] = secrets.missing.get(name, "no values")
                continue
            obj = {**obj, "stringData": dict(secrets.values[name])}
        apply_object(client, obj)
        report.applied.append(ref(obj))
    for agent, revision in sorted(rendered.revisions.items()):
        if record(client, agent, namespace, revision, rendered.of_agent(agent), limit=history_limit):
            report.recorded.append(agent)
    if prune:
        wanted = {(o["kind"], o["metadata"]["name"]) for o in rendered.objects}
        report.pruned = prune_objects(client, namespace, keep=wanted)
    return report


def apply_object(client: Any, obj: dict[str, Any]) -> None:
    try:
        client.apply(to_resource(obj), force=True)
    except api_error() as exc:
        raise ClusterError(f"{ref(obj)}: the API server refused it: {describe(exc)}") from None


def managed_objects(
    client: Any, namespace: str, *, agent: str | None = None
) -> list[tuple[str, str, dict[str, str]]]:
    """(kind, name, labels) of everything fleetplane applied in `namespace` (history excluded)."""
    selector = dict(MANAGED_BY) if agent is None else {**MANAGED_BY, AGENT_LABEL: agent}
    found = []
    for kind, api_version in PRUNABLE.items():
        try:
            items = list(client.list(resource_class(api_version, kind), namespace=namespace, labels=selector))
        except api_error() as exc:
            if status_code(exc) == 404:
                continue  # the kind is not served here (KEDA not installed)
            raise
        for item in items:
            labels = dict(item.metadata.labels or {})
            # Select by label again: a server that ignores labelSelector must not widen a prune.
            if selector.items() <= labels.items() and labels.get(ROLE_LABEL) != "history":
                found.append((kind, item.metadata.name, labels))
    return found


def prune_objects(
    client: Any, namespace: str, *, keep: set[tuple[str, str]], agent: str | None = None
) -> list[str]:
    pruned = []
    for kind, name, _ in sorted(managed_objects(client, namespace, agent=agent), key=lambda k: _order(k[0])):
        if (kind, name) in keep:
            continue
        client.delete(resource_class(PRUNABLE[kind], kind), name, namespace=namespace)
        pruned.append(f"{kind}/{name}")
    return pruned


def _order(kind: str) -> int:
    # Delete in reverse dependency order: autoscalers and policies before the workloads they point at.
    return -KIND_ORDER.index(kind)
