"""The pieces of a pod every fleetplane workload shares: the restricted security context, probes,
resources, a writable /tmp and Secrets as read-only files."""

from __future__ import annotations

import math
from typing import Any

from fleetplane.manifests.agent import Probe, Resources

SECRETS_DIR = "/run/secrets"  # the same path the local sandboxes use (runtime.replica.SECRETS_DIR)
RUN_AS = 65532  # the conventional "nonroot" user of distroless images

# gVisor and Kata each cost memory and CPU per pod (runtime.md measured ~45 MB per idle gVisor sandbox);
# `overhead.podFixed` makes the scheduler count it.
RUNTIME_CLASSES: dict[str, dict[str, Any]] = {
    "gvisor": {
        "name": "fleetplane-gvisor",
        "handler": "runsc",
        "overhead": {"cpu": "100m", "memory": "64Mi"},
    },
    "microvm": {"name": "fleetplane-kata", "handler": "kata", "overhead": {"cpu": "250m", "memory": "160Mi"}},
}


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    """The `restricted` Pod Security Standard, and a read-only root filesystem on top."""
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _seconds(value: float, *, minimum: int) -> int:
    # Kubernetes counts probe timings in whole seconds; round up so a probe is never stricter than asked.
    return max(minimum, math.ceil(value))


def probe(spec: Probe, *, port: str, must_succeed_once: bool) -> dict[str, Any]:
    """A manifest probe as a Kubernetes probe; liveness and startup probes must have successThreshold 1."""
    out: dict[str, Any]
    if spec.http is not None:
        out = {"httpGet": {"path": spec.http.path, "port": spec.http.port or port}}
    else:
        assert spec.exec is not None  # the manifest validates exactly one of the two
        out = {"exec": {"command": list(spec.exec.command)}}
    out.update(
        initialDelaySeconds=_seconds(spec.initial_delay, minimum=0),
        periodSeconds=_seconds(spec.period, minimum=1),
        timeoutSeconds=_seconds(spec.timeout, minimum=1),
        failureThreshold=spec.failure_threshold,
        successThreshold=1 if must_succeed_once else spec.success_threshold,
    )
    return out


def http_probe(path: str, port: str, *, period: int = 5, failures: int = 3) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
        "successThreshold": 1,
    }


def _gpu(resources: Resources) -> dict[str, Any]:
    gpu = resources.gpu
    if gpu is None:
        return {}
    count = max(gpu.count, 1)
    if gpu.mig is not None:
        # The NVIDIA device plugin's "mixed" MIG strategy names one resource per profile.
        return {f"nvidia.com/mig-{gpu.mig}": count}
    if gpu.share is not None:
        # A time-sliced replica (device plugin `sharing.timeSlicing` with renameByDefault).
        return {"nvidia.com/gpu.shared": 1}
    return {"nvidia.com/gpu": gpu.count} if gpu.count else {}


def resources(spec: Resources) -> dict[str, Any]:
    """Requests equal to limits (Guaranteed QoS): what the local supervisor enforces, the scheduler
    reserves. GPUs go in both, as extended resources must."""
    amounts: dict[str, Any] = {"cpu": spec.cpu, "memory": spec.memory, "ephemeral-storage": spec.disk}
    amounts.update(_gpu(spec))
    return {"requests": dict(amounts), "limits": dict(amounts)}


def secret_volume(name: str, secret: str, keys: list[str]) -> dict[str, Any]:
    # Listing the items makes a missing key fail the pod's start instead of mounting nothing.
    return {
        "name": name,
        "secret": {
            "secretName": secret,
            "defaultMode": 0o440,
            "items": [{"key": key, "path": key} for key in keys],
        },
    }


def tmp_volume(size: str) -> dict[str, Any]:
    return {"name": "tmp", "emptyDir": {"sizeLimit": size}}
