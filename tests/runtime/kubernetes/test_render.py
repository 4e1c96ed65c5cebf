"""What `render_fleet` makes of each Agent: workload, policies, autoscalers, secrets, determinism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.loader import load
from fleetplane.runtime.kubernetes import RenderError, RenderOptions, render_fleet, write_objects
from fleetplane.runtime.kubernetes.render import load_objects

from .conftest import FLEET, GATEWAY_IMAGE


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def _container(objects: list[dict[str, Any]], agent: str) -> dict[str, Any]:
    return _find(objects, "Deployment", f"agent-{agent}")["spec"]["template"]["spec"]["containers"][0]


def test_every_agent_gets_its_objects(fleet: DesiredState, options: RenderOptions) -> None:
    rendered = render_fleet(fleet, options)
    kinds = sorted(o["kind"] for o in rendered.of_agent("support-bot"))
    assert kinds == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Secret",
        "Secret",
        "Service",
    ]
    triage = sorted(o["kind"] for o in rendered.of_agent("triage"))
    assert "ScaledObject" in triage and "HorizontalPodAutoscaler" not in triage
    assert sorted(rendered.revisions) == ["embedder", "sandboxed-coder", "support-bot", "triage"]
    names = {(o["kind"], o["metadata"]["name"]) for o in rendered.objects}
    assert {
        ("Deployment", "fleetplane-gateway"),
        ("Service", "fleetplane-gateway"),
        ("ConfigMap", "fleetplane-manifests"),
        ("Secret", "fleetplane-gateway-store"),
        ("RuntimeClass", "fleetplane-gvisor"),
        ("RuntimeClass", "fleetplane-kata"),
    } <= names


def test_deployment_rolls_safely_with_a_pinned_image(fleet: DesiredState, options: RenderOptions) -> None:
    rendered = render_fleet(fleet, options)
    deployment = _find(rendered.objects, "Deployment", "agent-support-bot")
    spec = deployment["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert "replicas" not in spec  # the HPA owns the count
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/component": "agent",
        "app.kubernetes.io/name": "support-bot",
        "fleetplane.dev/agent": "support-bot",
    }
    labels = spec["template"]["metadata"]["labels"]
    assert labels["fleetplane.dev/revision"] == rendered.revisions["support-bot"]
    assert labels["app.kubernetes.io/managed-by"] == "fleetplane"
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"].endswith("@sha256:" + "1" * 64)
    assert container["command"] == ["python", "-m", "support_bot"]
    assert _find(rendered.objects, "Deployment", "agent-embedder")["spec"]["replicas"] == 1


def test_restricted_security_context_and_runtime_class(fleet: DesiredState, options: RenderOptions) -> None:
    objects = render_fleet(fleet, options).objects
    for agent, runtime_class in [
        ("support-bot", None),
        ("embedder", None),
        ("triage", "fleetplane-gvisor"),
        ("sandboxed-coder", "fleetplane-kata"),
    ]:
        pod = _find(objects, "Deployment", f"agent-{agent}")["spec"]["template"]["spec"]
        assert pod.get("runtimeClassName") == runtime_class, agent
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        security = pod["containers"][0]["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
    gvisor = _find(objects, "RuntimeClass", "fleetplane-gvisor")
    assert gvisor["handler"] == "runsc"
    assert _find(objects, "RuntimeClass", "fleetplane-kata")["handler"] == "kata"
    assert "namespace" not in gvisor["metadata"]


def test_secrets_are_read_only_files_never_env(fleet: DesiredState, options: RenderOptions) -> None:
    objects = render_fleet(fleet, options).objects
    pod = _find(objects, "Deployment", "agent-support-bot")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True} in container["volumeMounts"]
    volume = next(v for v in pod["volumes"] if v["name"] == "secrets")
    assert volume["secret"]["secretName"] == "agent-support-bot-secrets"
    assert [i["key"] for i in volume["secret"]["items"]] == ["crm-token", "tls-key"]
    env_refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e]
    assert env_refs == ["agent-support-bot-virtual-key"] * 2  # only the gateway key, never a user secret
    secret = _find(objects, "Secret", "agent-support-bot-secrets")
    assert "data" not in secret and "stringData" not in secret  # no value is ever rendered
    assert secret["metadata"]["annotations"]["fleetplane.dev/secret-sources"] == (
        '{"crm-token": "env:TEST_CRM_TOKEN", "tls-key": "file:tls.key"}'
    )


def test_gateway_settings_are_injected(fleet: DesiredState, options: RenderOptions) -> None:
    rendered = render_fleet(fleet, options)
    env = {
        e["name"]: e.get("value", e.get("valueFrom"))
        for e in _container(rendered.objects, "support-bot")["env"]
    }
    gateway = "http://fleetplane-gateway.agents.svc.cluster.local:8700"
    assert env["FLEETPLANE_GATEWAY_URL"] == gateway
    assert env["OPENAI_BASE_URL"] == f"{gateway}/v1"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == gateway
    assert env["OPENAI_API_KEY"] == {"secretKeyRef": {"name": "agent-support-bot-virtual-key", "key": "key"}}
    assert env["FLEETPLANE_REVISION"] == rendered.revisions["support-bot"]
    assert env["PORT"] == "9000" and env["LOG_LEVEL"] == "info"
    triage = {e["name"]: e.get("value") for e in _container(rendered.objects, "triage")["env"]}
    assert '"instructions_version": "3"' in triage["FLEETPLANE_AGENT_SPEC"].replace('":"', '": "')
    assert _container(rendered.objects, "triage")["command"] == ["fleetplane", "agent", "serve"]
    assert _container(rendered.objects, "triage")["image"] == GATEWAY_IMAGE


def test_probes_and_resources(fleet: DesiredState, options: RenderOptions) -> None:
    objects = render_fleet(fleet, options).objects
    bot = _container(objects, "support-bot")
    assert bot["startupProbe"]["httpGet"] == {"path": "/started", "port": "http"}
    assert bot["startupProbe"]["failureThreshold"] == 30
    assert bot["readinessProbe"]["successThreshold"] == 2
    assert bot["livenessProbe"]["exec"] == {"command": ["cat", "/tmp/alive"]}
    assert bot["livenessProbe"]["timeoutSeconds"] == 2  # 1.5 s rounded up to whole seconds
    assert bot["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "128Mi"}
    assert bot["resources"]["requests"] == bot["resources"]["limits"]
    embedder = _container(objects, "embedder")  # no probes declared: the health endpoint
    assert embedder["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert embedder["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert embedder["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert _container(objects, "sandboxed-coder")["resources"]["limits"]["nvidia.com/mig-1g.5gb"] == 1


def test_network_policy_denies_by_default(fleet: DesiredState, options: RenderOptions) -> None:
    rendered = render_fleet(fleet, options)
    policy = _find(rendered.objects, "NetworkPolicy", "agent-support-bot")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    gateway = {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/component": "gateway",
                "app.kubernetes.io/name": "fleetplane-gateway",
            }
        }
    }
    assert policy["egress"][0] == {"to": [gateway], "ports": [{"protocol": "TCP", "port": 8700}]}
    assert policy["egress"][1]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert policy["egress"][2:] == [
        {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 5432}]},
        {"to": [{"ipBlock": {"cidr": "203.0.113.7/32"}}], "ports": [{"protocol": "TCP", "port": 443}]},
    ]
    assert any("'api.example.com' is a host name" in w for w in rendered.warnings)
    assert policy["ingress"] == [{"from": [gateway], "ports": [{"protocol": "TCP", "port": 9000}]}]
    # network: none -> no egress at all, not even DNS.
    assert _find(rendered.objects, "NetworkPolicy", "agent-sandboxed-coder")["spec"]["egress"] == []


def test_autoscalers(fleet: DesiredState, options: RenderOptions) -> None:
    objects = render_fleet(fleet, options).objects
    hpa = _find(objects, "HorizontalPodAutoscaler", "agent-support-bot")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["pods"]["target"] == {"type": "AverageValue", "averageValue": "4"}
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
    keda = _find(objects, "ScaledObject", "agent-triage")["spec"]
    assert (keda["minReplicaCount"], keda["maxReplicaCount"], keda["cooldownPeriod"]) == (0, 3, 300)
    assert keda["triggers"][0]["metadata"]["threshold"] == "2500m"
    pdb = _find(objects, "PodDisruptionBudget", "agent-triage")["spec"]
    assert pdb == {
        "maxUnavailable": 1,
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/component": "agent",
                "app.kubernetes.io/name": "triage",
                "fleetplane.dev/agent": "triage",
            }
        },
    }


def test_gateway_reads_store_urls_from_a_secret(fleet: DesiredState, options: RenderOptions) -> None:
    objects = render_fleet(fleet, options).objects
    gateway = _find(objects, "Deployment", "fleetplane-gateway")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("valueFrom") for e in gateway["containers"][0]["env"]}
    assert env["FLEETPLANE_REDIS_URL"] == {
        "secretKeyRef": {"name": "fleetplane-gateway-store", "key": "redis-url"}
    }
    assert env["FLEETPLANE_DATABASE_URL"] == {
        "secretKeyRef": {"name": "fleetplane-gateway-store", "key": "database-url"}
    }
    manifests = _find(objects, "ConfigMap", "fleetplane-manifests")["data"]["fleet.yaml"]
    assert "kind: Agent" in manifests and "name: support-bot" in manifests


def test_output_is_deterministic(fleet: DesiredState, options: RenderOptions, tmp_path: Path) -> None:
    first = write_objects(render_fleet(fleet, options).objects, tmp_path / "a")
    second = write_objects(render_fleet(load(FLEET), options).objects, tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))
    assert "deployment-agent-support-bot.yaml" in {p.name for p in first}
    assert "&id" not in (tmp_path / "a" / "deployment-agent-support-bot.yaml").read_text()
    single = write_objects(render_fleet(fleet, options).objects, tmp_path / "all.yaml", single_file=True)
    assert load_objects(single[0]) == load_objects(tmp_path / "a")


def test_revision_changes_only_for_the_changed_agent(fleet: DesiredState, options: RenderOptions) -> None:
    before = render_fleet(fleet, options).revisions
    image = "registry.example.com/acme/embedder@sha256:" + "4" * 64
    after = render_fleet(
        fleet,
        RenderOptions(namespace="agents", gateway_image=GATEWAY_IMAGE, agent_images={"embedder": image}),
    ).revisions
    assert after["embedder"] != before["embedder"]
    assert {k: v for k, v in after.items() if k != "embedder"} == {
        k: v for k, v in before.items() if k != "embedder"
    }


def _fleet_with(tmp_path: Path, annotations: str) -> DesiredState:
    (tmp_path / "infra.yaml").write_text((FLEET / "infra.yaml").read_text())
    (tmp_path / "agent.yaml").write_text(
        "apiVersion: fleetplane.dev/v1alpha1\nkind: Agent\nmetadata:\n  name: byo\n"
        f"{annotations}spec:\n  run: {{command: [/bin/agent]}}\n"
    )
    return load(tmp_path)


def test_tag_only_image_is_refused(tmp_path: Path, options: RenderOptions) -> None:
    desired = _fleet_with(
        tmp_path, "  annotations: {fleetplane.dev/image: 'registry.example.com/byo:latest'}\n"
    )
    with pytest.raises(RenderError) as caught:
        render_fleet(desired, options)
    assert caught.value.problems == [
        "Agent/byo: metadata.annotations['fleetplane.dev/image']: image 'registry.example.com/byo:latest' is "
        "not pinned by digest (expected repo@sha256:<64 hex digits>; a tag can move under a rollback)"
    ]


def test_bring_your_own_agent_needs_an_image(tmp_path: Path, options: RenderOptions) -> None:
    desired = _fleet_with(tmp_path, "")
    with pytest.raises(RenderError) as caught:
        render_fleet(desired, options)
    assert caught.value.problems == [
        "Agent/byo: metadata.annotations['fleetplane.dev/image']: no image: a bring-your-own agent names its "
        "image in metadata.annotations['fleetplane.dev/image'] (repo@sha256:...)"
    ]
    image = "registry.example.com/byo@sha256:" + "5" * 64
    rendered = render_fleet(desired, RenderOptions(gateway_image=GATEWAY_IMAGE, agent_images={"byo": image}))
    assert _container(rendered.objects, "byo")["image"] == image


def test_gateway_image_must_be_pinned(fleet: DesiredState) -> None:
    with pytest.raises(RenderError) as caught:
        render_fleet(fleet, RenderOptions(gateway_image="ghcr.io/acme/fleetplane:0.1.0"))
    tail = "is not pinned by digest (expected repo@sha256:<64 hex digits>; a tag can move under a rollback)"
    assert caught.value.problems == [
        f"Agent/triage: the runner image: image 'ghcr.io/acme/fleetplane:0.1.0' {tail}",
        "the gateway image (--gateway-image): image 'ghcr.io/acme/fleetplane:0.1.0' is not pinned by digest "
        "(expected repo@sha256:<64 hex digits>; a tag can move under a rollback)",
    ]
