"""The semantic lint catches each mistake schema validation lets through, naming object and field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from fleetplane.manifests.desired import DesiredState
from fleetplane.runtime.kubernetes import RenderOptions, lint, render_fleet
from fleetplane.runtime.kubernetes.quantity import QuantityError, parse_quantity

Objects = list[dict[str, Any]]


def _get(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _bot(objects: Objects) -> dict[str, Any]:
    return _get(objects, "Deployment", "agent-support-bot")["spec"]["template"]["spec"]


def _container(objects: Objects) -> dict[str, Any]:
    return dict(_bot(objects)["containers"][0])


def _bad_memory(objects: Objects) -> None:
    _container(objects)["resources"]["limits"]["memory"] = "256MB"


def _bad_size_limit(objects: Objects) -> None:
    _bot(objects)["volumes"][0]["emptyDir"]["sizeLimit"] = "lots"


def _request_above_limit(objects: Objects) -> None:
    _container(objects)["resources"]["requests"]["cpu"] = "2"


def _selector_not_in_template(objects: Objects) -> None:
    spec = _get(objects, "Deployment", "agent-support-bot")["spec"]
    spec["selector"]["matchLabels"]["tier"] = "web"


def _tag_only_image(objects: Objects) -> None:
    _bot(objects)["containers"][0]["image"] = "registry.example.com/acme/support-bot:1.4"


def _missing_secret(objects: Objects) -> None:
    objects.remove(_get(objects, "Secret", "agent-support-bot-secrets"))


def _missing_key_secret(objects: Objects) -> None:
    objects.remove(_get(objects, "Secret", "agent-support-bot-virtual-key"))


def _missing_config_map(objects: Objects) -> None:
    objects.remove(_get(objects, "ConfigMap", "fleetplane-manifests"))


def _missing_gateway_service(objects: Objects) -> None:
    objects.remove(_get(objects, "Service", "fleetplane-gateway"))


def _missing_runtime_class(objects: Objects) -> None:
    objects.remove(_get(objects, "RuntimeClass", "fleetplane-gvisor"))


def _no_liveness(objects: Objects) -> None:
    del _bot(objects)["containers"][0]["livenessProbe"]


def _pdb_selects_nothing(objects: Objects) -> None:
    _get(objects, "PodDisruptionBudget", "agent-triage")["spec"]["selector"]["matchLabels"][
        "fleetplane.dev/agent"
    ] = "triag"


def _service_selects_nothing(objects: Objects) -> None:
    _get(objects, "Service", "agent-embedder")["spec"]["selector"] = {"app": "embedder"}


def _hpa_target_missing(objects: Objects) -> None:
    _get(objects, "HorizontalPodAutoscaler", "agent-support-bot")["spec"]["scaleTargetRef"]["name"] = (
        "support-bot"
    )


def _bad_hpa_target(objects: Objects) -> None:
    metric = _get(objects, "HorizontalPodAutoscaler", "agent-support-bot")["spec"]["metrics"][0]
    metric["pods"]["target"]["averageValue"] = "four"


def _writable_root(objects: Objects) -> None:
    _bot(objects)["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False


def _config_map_too_big(objects: Objects) -> None:
    _get(objects, "ConfigMap", "fleetplane-manifests")["data"]["fleet.yaml"] = "x" * (2**20 + 1)


def _rollout_may_drop(objects: Objects) -> None:
    _get(objects, "Deployment", "agent-support-bot")["spec"]["strategy"]["rollingUpdate"][
        "maxUnavailable"
    ] = 1


BOT = "Deployment/agent-support-bot"
C0 = "spec.template.spec.containers[0]"
QUANTITY = "is not a Kubernetes quantity (e.g. 250m, 1, 512Mi, 2Gi)"
ABSENT = "is not in the rendered set"
NO_PODS = "selects the pods of no Deployment in the rendered set"
TRIAGE = "app.kubernetes.io/component=agent,app.kubernetes.io/name=triage,fleetplane.dev/agent=triag"
KEY_SECRET = "Secret 'agent-support-bot-virtual-key'"
# (mistake, [(object, field, message) expected from the lint, in order])
CASES: list[tuple[Callable[[Objects], None], list[tuple[str, str, str]]]] = [
    (_bad_memory, [(BOT, f"{C0}.resources.limits.memory", f"'256MB' {QUANTITY}")]),
    (_bad_size_limit, [(BOT, "spec.template.spec.volumes[0].emptyDir.sizeLimit", f"'lots' {QUANTITY}")]),
    (_request_above_limit, [(BOT, f"{C0}.resources.requests.cpu", "the request is above the limit (500m)")]),
    (
        _selector_not_in_template,
        [
            (
                BOT,
                "spec.selector.matchLabels.tier",
                "'web' is not among the template's labels (spec.template.metadata.labels)",
            )
        ],
    ),
    (
        _tag_only_image,
        [
            (
                BOT,
                f"{C0}.image",
                "'registry.example.com/acme/support-bot:1.4' is not pinned by digest "
                "(repo@sha256:<64 hex digits>)",
            )
        ],
    ),
    (
        _missing_secret,
        [
            (
                BOT,
                "spec.template.spec.volumes[1].secret.secretName",
                f"Secret 'agent-support-bot-secrets' {ABSENT}",
            )
        ],
    ),
    (
        _missing_key_secret,
        [(BOT, f"{C0}.env[{i}].valueFrom.secretKeyRef.name", f"{KEY_SECRET} {ABSENT}") for i in (12, 13)],
    ),
    (
        _missing_config_map,
        [
            (
                "Deployment/fleetplane-gateway",
                "spec.template.spec.volumes[0].configMap.name",
                f"ConfigMap 'fleetplane-manifests' {ABSENT}",
            )
        ],
    ),
    (
        _missing_gateway_service,
        [
            (f"Deployment/agent-{a}", f"{C0}.env[0].value", f"Service 'fleetplane-gateway' {ABSENT}")
            for a in ("embedder", "sandboxed-coder", "support-bot", "triage")
        ],
    ),
    (
        _missing_runtime_class,
        [
            (
                "Deployment/agent-triage",
                "spec.template.spec.runtimeClassName",
                f"RuntimeClass 'fleetplane-gvisor' {ABSENT}",
            )
        ],
    ),
    (
        _no_liveness,
        [(BOT, f"{C0}.livenessProbe", "missing: every container needs readiness and liveness probes")],
    ),
    (
        _pdb_selects_nothing,
        [("PodDisruptionBudget/agent-triage", "spec.selector.matchLabels", f"{TRIAGE} {NO_PODS}")],
    ),
    (_service_selects_nothing, [("Service/agent-embedder", "spec.selector", f"app=embedder {NO_PODS}")]),
    (
        _hpa_target_missing,
        [
            (
                "HorizontalPodAutoscaler/agent-support-bot",
                "spec.scaleTargetRef.name",
                f"Deployment 'support-bot' {ABSENT}",
            )
        ],
    ),
    (
        _bad_hpa_target,
        [
            (
                "HorizontalPodAutoscaler/agent-support-bot",
                "spec.metrics[0].target.averageValue",
                f"'four' {QUANTITY}",
            )
        ],
    ),
    (
        _config_map_too_big,
        [
            (
                "ConfigMap/fleetplane-manifests",
                "data",
                "1048577 bytes: above the 1 MiB an object may hold in etcd",
            )
        ],
    ),
    (_writable_root, [(BOT, f"{C0}.securityContext.readOnlyRootFilesystem", "must be true")]),
    (
        _rollout_may_drop,
        [
            (
                BOT,
                "spec.strategy.rollingUpdate.maxUnavailable",
                "must be 0: a rollout never drops below the ready count",
            )
        ],
    ),
]


def test_the_rendered_fleet_is_clean(fleet: DesiredState, options: RenderOptions) -> None:
    assert lint(render_fleet(fleet, options).objects) == []


@pytest.mark.parametrize(("mistake", "expected"), CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_each_seeded_mistake_is_caught(
    fleet: DesiredState,
    options: RenderOptions,
    mistake: Callable[[Objects], None],
    expected: list[tuple[str, str, str]],
) -> None:
    objects = copy.deepcopy(render_fleet(fleet, options).objects)
    mistake(objects)
    assert [(p.object, p.field, p.message) for p in lint(objects)] == expected


def test_an_object_defined_twice(fleet: DesiredState, options: RenderOptions) -> None:
    objects = render_fleet(fleet, options).objects
    twice = [*objects, copy.deepcopy(_get(objects, "Service", "agent-triage"))]
    assert [str(p) for p in lint(twice)] == ["Service/agent-triage: metadata.name: defined twice"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", "0.250"),
        ("1", "1"),
        ("1.5", "1.5"),
        ("512Mi", str(512 * 2**20)),
        ("1e3", "1E+3"),
        ("2k", "2E+3"),
        (3, "3"),
    ],
)
def test_quantities(text: object, value: str) -> None:
    assert parse_quantity(text) == __import__("decimal").Decimal(value)


@pytest.mark.parametrize("text", ["256MB", "1.2.3", "", "Mi", "1 Gi", True, None])
def test_not_quantities(text: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)
