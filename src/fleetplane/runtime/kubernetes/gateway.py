"""The gateway as Kubernetes objects: a Deployment of `fleetplane up` replicas sharing Redis and
Postgres (URLs from a Secret), its Service, a disruption budget, and the fleet's manifests as a
ConfigMap it serves."""

from __future__ import annotations

import json
from typing import Any

import yaml

from fleetplane.manifests.desired import DesiredState
from fleetplane.runtime.kubernetes import pod
from fleetplane.runtime.kubernetes.labels import content_digest, object_labels, selector
from fleetplane.runtime.kubernetes.options import GATEWAY_PORT, RenderOptions

NAME = "fleetplane-gateway"
MANIFESTS = "fleetplane-manifests"  # the ConfigMap
MANIFESTS_KEY = "fleet.yaml"
MANIFESTS_DIR = "/etc/fleetplane/manifests"
STORE_SECRET = "fleetplane-gateway-store"
STORE_KEYS = {"FLEETPLANE_REDIS_URL": "redis-url", "FLEETPLANE_DATABASE_URL": "database-url"}


def manifests_yaml(desired: DesiredState) -> str:
    """Every manifest in its canonical form, sorted by kind and name: one deterministic document."""
    documents = sorted((m.to_document() for m in desired), key=lambda d: (d["kind"], d["metadata"]["name"]))
    return yaml.safe_dump_all(documents, sort_keys=True, allow_unicode=True)


def render_gateway(desired: DesiredState, image: str, options: RenderOptions) -> list[dict[str, Any]]:
    objects = _objects(desired, image, options, revision="")
    return _objects(desired, image, options, revision=content_digest(objects))


def _objects(
    desired: DesiredState, image: str, options: RenderOptions, *, revision: str
) -> list[dict[str, Any]]:
    labels = object_labels("gateway", NAME, revision)
    meta = {"name": NAME, "namespace": options.namespace, "labels": labels}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": MANIFESTS, "namespace": options.namespace, "labels": labels},
        "data": {MANIFESTS_KEY: manifests_yaml(desired)},
    }
    store_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": STORE_SECRET,
            "namespace": options.namespace,
            "labels": labels,
            "annotations": {
                "fleetplane.dev/secret-sources": json.dumps(
                    {key: f"option:--{key}" for key in sorted(STORE_KEYS.values())}, sort_keys=True
                )
            },
        },
    }
    return [config_map, store_secret, _deployment(image, options, meta), _service(meta), _pdb(meta)]


def _deployment(image: str, options: RenderOptions, meta: dict[str, Any]) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": STORE_SECRET, "key": key}}}
        for var, key in sorted(STORE_KEYS.items())
    ]
    env.append({"name": "FLEETPLANE_HOME", "value": "/tmp/fleetplane"})
    container = {
        "name": "gateway",
        "image": image,
        "command": ["fleetplane", "up", MANIFESTS_DIR, "--host", "0.0.0.0", "--port", str(GATEWAY_PORT)],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "256Mi"},
            "limits": {"cpu": "2", "memory": "1Gi", "ephemeral-storage": "1Gi"},
        },
        "securityContext": pod.container_security(),
        "readinessProbe": pod.http_probe("/admin/ready", "http", period=2),
        "livenessProbe": pod.http_probe("/admin/health", "http", period=10),
        "volumeMounts": [
            {"name": "manifests", "mountPath": MANIFESTS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": options.gateway_replicas,
            "selector": {"matchLabels": selector("gateway", NAME)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "revisionHistoryLimit": options.revision_history_limit,
            "template": {
                "metadata": {"labels": meta["labels"]},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod.pod_security(),
                    "containers": [container],
                    "volumes": [
                        {"name": "manifests", "configMap": {"name": MANIFESTS}},
                        pod.tmp_volume("1Gi"),
                    ],
                },
            },
        },
    }


def _service(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": selector("gateway", NAME),
            "ports": [{"name": "http", "port": GATEWAY_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _pdb(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta,
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector("gateway", NAME)}},
    }
