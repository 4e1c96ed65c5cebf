"""One Agent as Kubernetes objects: Deployment, Service, autoscaler, NetworkPolicy, PodDisruptionBudget
and the Secrets its pods mount."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from fleetplane.manifests.agent import MINIMUM_TIER, Agent, Probes
from fleetplane.runtime.kubernetes import pod
from fleetplane.runtime.kubernetes.labels import (
    agent_object_name,
    content_digest,
    object_labels,
    selector,
)
from fleetplane.runtime.kubernetes.options import GATEWAY_PORT, RenderOptions
from fleetplane.runtime.specs import environment

IN_FLIGHT_METRIC = "fleetplane_agent_in_flight_requests"
VIRTUAL_KEY = "key"  # the key inside the agent's virtual-key Secret
PORT_NAME = "http"
_DEFAULT_PROBE = "/healthz"  # every agent serves it (docs/runtime.md)


def secrets_name(agent: str) -> str:
    return f"{agent_object_name(agent)}-secrets"


def virtual_key_name(agent: str) -> str:
    return f"{agent_object_name(agent)}-virtual-key"


def render_agent(
    agent: Agent, image: str, options: RenderOptions, warnings: list[str]
) -> list[dict[str, Any]]:
    """The agent's objects, each labelled with the revision: a digest of everything rendered for it."""
    objects = _objects(agent, image, options, revision="", warnings=warnings)
    revision = content_digest(objects)
    return _objects(agent, image, options, revision=revision, warnings=[])


def _objects(
    agent: Agent, image: str, options: RenderOptions, *, revision: str, warnings: list[str]
) -> list[dict[str, Any]]:
    spec = agent.spec
    name = agent_object_name(agent.name)
    labels = object_labels("agent", agent.name, revision)
    meta = {"name": name, "namespace": options.namespace, "labels": labels}
    out = [
        _deployment(agent, image, options, meta, revision, warnings),
        _service(agent, meta),
        _network_policy(agent, meta, warnings),
        _pdb(agent, meta),
        _secret(virtual_key_name(agent.name), options, labels, {VIRTUAL_KEY: f"VirtualKey for {agent.name}"}),
    ]
    if spec.secrets:
        sources = {s.name: f"env:{s.env}" if s.env else f"file:{s.file}" for s in spec.secrets}
        out.append(_secret(secrets_name(agent.name), options, labels, sources))
    if spec.autoscaling is not None:
        scale_to_zero = spec.autoscaling.scale_to_zero or spec.replicas.min == 0
        out.append(_scaled_object(agent, meta, options) if scale_to_zero else _hpa(agent, meta))
    return out


def _deployment(
    agent: Agent,
    image: str,
    options: RenderOptions,
    meta: dict[str, Any],
    revision: str,
    warnings: list[str],
) -> dict[str, Any]:
    spec = agent.spec
    if spec.restart_policy != "Always":
        warnings.append(
            f"Agent/{agent.name}: spec.restartPolicy {spec.restart_policy!r}: a Deployment always "
            "restarts its pods (Always)"
        )
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes = [pod.tmp_volume(spec.resources.disk)]
    if spec.secrets:
        keys = sorted(s.name for s in spec.secrets)
        volumes.append(pod.secret_volume("secrets", secrets_name(agent.name), keys))
        mounts.append({"name": "secrets", "mountPath": pod.SECRETS_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": "agent",
        "image": image,
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "env": _env(agent, options, revision),
        "resources": pod.resources(spec.resources),
        "securityContext": pod.container_security(),
        "volumeMounts": mounts,
        **_probes(spec.probes),
    }
    if spec.run is not None:
        container["command"] = list(spec.run.command)
        if spec.run.workdir is not None:
            container["workingDir"] = "/agent"  # the image carries the directory the host mounts locally
    else:
        container["command"] = ["fleetplane", "agent", "serve"]
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod.pod_security(),
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": volumes,
    }
    tier = spec.isolation or MINIMUM_TIER[spec.trust]
    if tier in pod.RUNTIME_CLASSES:
        # Fail closed: a node without this handler cannot run the pod; it never falls back to runc.
        pod_spec["runtimeClassName"] = pod.RUNTIME_CLASSES[tier]["name"]
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector("agent", agent.name)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "revisionHistoryLimit": options.revision_history_limit,
        "template": {"metadata": {"labels": meta["labels"]}, "spec": pod_spec},
    }
    if spec.autoscaling is None:
        deployment_spec["replicas"] = spec.replicas.min  # otherwise the autoscaler owns the count
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": deployment_spec}


def _env(agent: Agent, options: RenderOptions, revision: str) -> list[dict[str, Any]]:
    """The agent's own env, then the shared infrastructure fleetplane injects (never set by hand)."""
    gateway = f"{options.gateway_url}:{GATEWAY_PORT}"
    values = environment(agent)
    values.update(
        PORT=str(agent.spec.port),
        FLEETPLANE_REVISION=revision,
        FLEETPLANE_GATEWAY_URL=gateway,
        OPENAI_BASE_URL=f"{gateway}/v1",
        ANTHROPIC_BASE_URL=gateway,
        OTEL_EXPORTER_OTLP_ENDPOINT=options.otel_endpoint or gateway,
        OTEL_SERVICE_NAME=agent.name,
        OTEL_RESOURCE_ATTRIBUTES=f"fleetplane.agent={agent.name},fleetplane.revision={revision}",
        OTEL_PROPAGATORS="tracecontext,baggage",
    )
    if agent.spec.secrets:
        values["FLEETPLANE_SECRETS_DIR"] = pod.SECRETS_DIR
    env: list[dict[str, Any]] = [{"name": k, "value": values[k]} for k in sorted(values)]
    key_ref = {"secretKeyRef": {"name": virtual_key_name(agent.name), "key": VIRTUAL_KEY}}
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        env.append({"name": var, "valueFrom": key_ref})
    return env


def _probes(spec: Probes) -> dict[str, Any]:
    # An agent without declared probes still gets readiness and liveness on its health endpoint:
    # a pod that does not answer must neither take traffic nor stay up.
    out: dict[str, Any] = {
        "readinessProbe": pod.probe(spec.readiness, port=PORT_NAME, must_succeed_once=False)
        if spec.readiness
        else pod.http_probe(_DEFAULT_PROBE, PORT_NAME, period=2),
        "livenessProbe": pod.probe(spec.liveness, port=PORT_NAME, must_succeed_once=True)
        if spec.liveness
        else pod.http_probe(_DEFAULT_PROBE, PORT_NAME, period=10),
    }
    if spec.startup is not None:
        out["startupProbe"] = pod.probe(spec.startup, port=PORT_NAME, must_succeed_once=True)
    return out


def _service(agent: Agent, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": selector("agent", agent.name),
            "ports": [
                {"name": PORT_NAME, "port": agent.spec.port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def _network_policy(agent: Agent, meta: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Default deny; in from the gateway only; out to the gateway pods and DNS (and allowlisted IPs)."""
    gateway_pods = {"podSelector": {"matchLabels": selector("gateway", "fleetplane-gateway")}}
    dns = {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    egress: list[dict[str, Any]] = []
    network = agent.spec.network
    if network.mode != "none":
        egress = [{"to": [gateway_pods], "ports": [{"protocol": "TCP", "port": GATEWAY_PORT}]}, dns]
    for index, entry in enumerate(network.allow):
        host, _, port = entry.rpartition(":")
        try:
            block = ipaddress.ip_network(host.strip("[]"), strict=False)
        except ValueError:
            warnings.append(
                f"Agent/{agent.name}: spec.network.allow[{index}]: {host!r} is a host name; a "
                "NetworkPolicy admits only IP blocks, so it is not allowed on Kubernetes"
            )
            continue
        egress.append(
            {"to": [{"ipBlock": {"cidr": str(block)}}], "ports": [{"protocol": "TCP", "port": int(port)}]}
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {
            "podSelector": {"matchLabels": selector("agent", agent.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [gateway_pods], "ports": [{"protocol": "TCP", "port": agent.spec.port}]}],
            "egress": egress,
        },
    }


def _pdb(agent: Agent, meta: dict[str, Any]) -> dict[str, Any]:
    # One pod at a time may be evicted: a drain proceeds, and never takes every replica at once.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta,
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector("agent", agent.name)}},
    }


def _secret(
    name: str, options: RenderOptions, labels: dict[str, str], sources: dict[str, str]
) -> dict[str, Any]:
    """A Secret rendered without its values: `fleetplane apply --target kubernetes` fills them from the
    sources named in the annotation, so no value is ever written to a rendered file."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": options.namespace,
            "labels": labels,
            "annotations": {"fleetplane.dev/secret-sources": json.dumps(sources, sort_keys=True)},
        },
    }


def _hpa(agent: Agent, meta: dict[str, Any]) -> dict[str, Any]:
    scaling = agent.spec.autoscaling
    assert scaling is not None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"]},
            "minReplicas": max(agent.spec.replicas.min, 1),
            "maxReplicas": agent.spec.replicas.max,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": IN_FLIGHT_METRIC},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": _quantity(scaling.target_in_flight),
                        },
                    },
                }
            ],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": round(scaling.upscale_delay)},
                "scaleDown": {"stabilizationWindowSeconds": round(scaling.downscale_delay)},
            },
        },
    }


def _scaled_object(agent: Agent, meta: dict[str, Any], options: RenderOptions) -> dict[str, Any]:
    scaling = agent.spec.autoscaling
    assert scaling is not None
    query = f'sum({IN_FLIGHT_METRIC}{{agent="{agent.name}",namespace="{options.namespace}"}})'
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"]},
            "minReplicaCount": 0,
            "maxReplicaCount": agent.spec.replicas.max,
            "cooldownPeriod": round(scaling.downscale_delay),
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleUp": {"stabilizationWindowSeconds": round(scaling.upscale_delay)}}
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": options.prometheus_url,
                        "query": query,
                        "threshold": _quantity(scaling.target_in_flight),
                    },
                }
            ],
        },
    }


def _quantity(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"
