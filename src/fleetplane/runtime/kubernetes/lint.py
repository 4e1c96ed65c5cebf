"""The semantic lint: what schema validation (kubernetes-validate) does not catch.

Quantities that do not parse, selectors that select nothing, images not pinned by digest, references to
Secrets, ConfigMaps, Services, RuntimeClasses or Deployments missing from the rendered set, containers
without probes, and pods without the restricted security context. Each problem names the object and the
field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fleetplane.runtime.kubernetes.images import is_pinned
from fleetplane.runtime.kubernetes.quantity import QuantityError, parse_quantity

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_SERVICE_URL = re.compile(r"^https?://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\b")
_CONFIG_MAP_LIMIT = 2**20
_SCALED_KINDS = ("HorizontalPodAutoscaler", "ScaledObject")
_METRIC_SOURCE = {
    "Resource": "resource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
    "ContainerResource": "containerResource",
}


@dataclass(frozen=True)
class LintProblem:
    object: str  # Kind/name
    field: str  # a dotted path inside it
    message: str

    def __str__(self) -> str:
        return f"{self.object}: {self.field}: {self.message}"


def lint(objects: list[dict[str, Any]]) -> list[LintProblem]:
    """Every problem in the set, in object order; an empty list when it is sound."""
    index: dict[tuple[str, str], dict[str, Any]] = {}
    problems: list[LintProblem] = []
    for obj in objects:
        key = (obj.get("kind", ""), obj.get("metadata", {}).get("name", ""))
        if key in index:
            problems.append(LintProblem(f"{key[0]}/{key[1]}", "metadata.name", "defined twice"))
        index[key] = obj
    for obj in objects:
        problems.extend(_check(obj, index))
    return problems


def _check(obj: dict[str, Any], index: dict[tuple[str, str], dict[str, Any]]) -> Iterator[LintProblem]:
    kind = obj.get("kind", "")
    name = f"{kind}/{obj.get('metadata', {}).get('name')}"
    for where, message in _checks(obj, kind, index):
        yield LintProblem(name, where, message)


def _checks(
    obj: dict[str, Any], kind: str, index: dict[tuple[str, str], dict[str, Any]]
) -> Iterator[tuple[str, str]]:
    spec = obj.get("spec") or {}
    if kind == "Deployment":
        yield from _deployment(spec, index)
    elif kind == "Service":
        if not _DNS_LABEL.match(obj["metadata"].get("name", "")):
            yield "metadata.name", "a Service name must be a DNS label (a-z, 0-9, '-', at most 63)"
        yield from _selects("spec.selector", spec.get("selector") or {}, index)
    elif kind == "PodDisruptionBudget":
        yield from _selects("spec.selector.matchLabels", _match(spec.get("selector")), index)
    elif kind == "NetworkPolicy":
        yield from _selects("spec.podSelector.matchLabels", _match(spec.get("podSelector")), index)
    elif kind in _SCALED_KINDS:
        target = spec.get("scaleTargetRef") or {}
        if ("Deployment", target.get("name")) not in index:
            yield "spec.scaleTargetRef.name", f"Deployment {target.get('name')!r} is not in the rendered set"
        yield from _scaler_quantities(kind, spec)
    elif kind == "ConfigMap":
        size = sum(len(str(v).encode()) for v in (obj.get("data") or {}).values())
        if size > _CONFIG_MAP_LIMIT:
            yield "data", f"{size} bytes: above the 1 MiB an object may hold in etcd"
    elif kind == "RuntimeClass":
        for resource, value in ((obj.get("overhead") or {}).get("podFixed") or {}).items():
            yield from _quantity(f"overhead.podFixed.{resource}", value)


def _match(selector: Any) -> dict[str, str]:
    return dict((selector or {}).get("matchLabels") or {})


def _deployments(index: dict[tuple[str, str], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (o for (kind, _), o in index.items() if kind == "Deployment")


def _template_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return dict((deployment.get("spec") or {}).get("template", {}).get("metadata", {}).get("labels") or {})


def _selects(
    where: str, selector: dict[str, str], index: dict[tuple[str, str], dict[str, Any]]
) -> Iterator[tuple[str, str]]:
    if not selector:
        yield where, "an empty selector selects every pod in the namespace"
        return
    for deployment in _deployments(index):
        if selector.items() <= _template_labels(deployment).items():
            return
    text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    yield where, f"{text} selects the pods of no Deployment in the rendered set"


def _deployment(
    spec: dict[str, Any], index: dict[tuple[str, str], dict[str, Any]]
) -> Iterator[tuple[str, str]]:
    selector = _match(spec.get("selector"))
    labels = (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
    if not selector:
        yield "spec.selector.matchLabels", "empty: the Deployment would adopt every pod"
    for key, value in selector.items():
        if labels.get(key) != value:
            yield (
                f"spec.selector.matchLabels.{key}",
                f"{value!r} is not among the template's labels (spec.template.metadata.labels)",
            )
    strategy = spec.get("strategy") or {}
    if (strategy.get("rollingUpdate") or {}).get("maxUnavailable") != 0:
        yield (
            "spec.strategy.rollingUpdate.maxUnavailable",
            "must be 0: a rollout never drops below the ready count",
        )
    pod = (spec.get("template") or {}).get("spec") or {}
    yield from _pod(pod, index)


def _pod(pod: dict[str, Any], index: dict[tuple[str, str], dict[str, Any]]) -> Iterator[tuple[str, str]]:
    base = "spec.template.spec"
    runtime_class = pod.get("runtimeClassName")
    if runtime_class is not None and ("RuntimeClass", runtime_class) not in index:
        yield f"{base}.runtimeClassName", f"RuntimeClass {runtime_class!r} is not in the rendered set"
    if (pod.get("securityContext") or {}).get("runAsNonRoot") is not True:
        yield f"{base}.securityContext.runAsNonRoot", "must be true"
    for i, volume in enumerate(pod.get("volumes") or []):
        where = f"{base}.volumes[{i}]"
        if "secret" in volume:
            yield from _ref(index, "Secret", volume["secret"].get("secretName"), f"{where}.secret.secretName")
        if "configMap" in volume:
            yield from _ref(index, "ConfigMap", volume["configMap"].get("name"), f"{where}.configMap.name")
        if "emptyDir" in volume and "sizeLimit" in volume["emptyDir"]:
            yield from _quantity(f"{where}.emptyDir.sizeLimit", volume["emptyDir"]["sizeLimit"])
    for i, container in enumerate(pod.get("containers") or []):
        yield from _container(f"{base}.containers[{i}]", container, index)


def _container(
    where: str, container: dict[str, Any], index: dict[tuple[str, str], dict[str, Any]]
) -> Iterator[tuple[str, str]]:
    image = container.get("image") or ""
    if not is_pinned(image):
        yield f"{where}.image", f"{image!r} is not pinned by digest (repo@sha256:<64 hex digits>)"
    for probe in ("readinessProbe", "livenessProbe"):
        if probe not in container:
            yield f"{where}.{probe}", "missing: every container needs readiness and liveness probes"
    for probe in ("livenessProbe", "startupProbe"):
        if container.get(probe, {}).get("successThreshold", 1) != 1:
            yield f"{where}.{probe}.successThreshold", "must be 1"
    security = container.get("securityContext") or {}
    wanted = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "runAsNonRoot": True}
    for key, value in wanted.items():
        if security.get(key) is not value:
            yield f"{where}.securityContext.{key}", f"must be {str(value).lower()}"
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        yield f"{where}.securityContext.capabilities.drop", "must drop ALL"
    if (security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        yield f"{where}.securityContext.seccompProfile.type", "must be RuntimeDefault"
    yield from _resources(f"{where}.resources", container.get("resources") or {})
    services: set[str] = set()  # each missing Service once per container, at its first use
    for j, env in enumerate(container.get("env") or []):
        at = f"{where}.env[{j}]"
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref is not None:
            yield from _ref(index, "Secret", ref.get("name"), f"{at}.valueFrom.secretKeyRef.name")
        ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
        if ref is not None:
            yield from _ref(index, "ConfigMap", ref.get("name"), f"{at}.valueFrom.configMapKeyRef.name")
        url = _SERVICE_URL.match(str(env.get("value") or ""))
        if url is not None and url.group(1) not in services:
            services.add(url.group(1))
            yield from _ref(index, "Service", url.group(1), f"{at}.value")


def _resources(where: str, resources: dict[str, Any]) -> Iterator[tuple[str, str]]:
    parsed: dict[str, dict[str, Any]] = {"requests": {}, "limits": {}}
    for part in ("requests", "limits"):
        for resource, value in (resources.get(part) or {}).items():
            try:
                parsed[part][resource] = parse_quantity(value)
            except QuantityError as exc:
                yield f"{where}.{part}.{resource}", str(exc)
    for resource, request in parsed["requests"].items():
        limit = parsed["limits"].get(resource)
        if limit is not None and request > limit:
            yield (
                f"{where}.requests.{resource}",
                f"the request is above the limit ({resources['limits'][resource]})",
            )


def _scaler_quantities(kind: str, spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if kind == "HorizontalPodAutoscaler":
        for i, metric in enumerate(spec.get("metrics") or []):
            target = (
                metric.get(
                    metric.get("type", "").lower()
                    if metric.get("type") != "ContainerResource"
                    else "containerResource"
                )
                or {}
            ).get("target") or {}
            for key in ("averageValue", "value"):
                if key in target:
                    yield from _quantity(f"spec.metrics[{i}].target.{key}", target[key])
    else:
        for i, trigger in enumerate(spec.get("triggers") or []):
            if "threshold" in (trigger.get("metadata") or {}):
                yield from _quantity(
                    f"spec.triggers[{i}].metadata.threshold", trigger["metadata"]["threshold"]
                )


def _quantity(where: str, value: Any) -> Iterator[tuple[str, str]]:
    try:
        parse_quantity(value)
    except QuantityError as exc:
        yield where, str(exc)


def _ref(
    index: dict[tuple[str, str], dict[str, Any]], kind: str, name: Any, where: str
) -> Iterator[tuple[str, str]]:
    if (kind, name) not in index:
        yield where, f"{kind} {name!r} is not in the rendered set"
