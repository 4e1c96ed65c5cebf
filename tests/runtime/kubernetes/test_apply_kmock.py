"""Server-side apply and rollback against kmock's in-memory Kubernetes API emulator, over real HTTP
(lightkube as the client). No cluster runs on these machines; see docs/kubernetes.md for what the
emulator does and does not check."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetplane.manifests.desired import DesiredState
from fleetplane.runtime.kubernetes import RenderOptions, render_fleet
from fleetplane.runtime.kubernetes.apply import SecretValues, apply_rendered, read_secret_values
from fleetplane.runtime.kubernetes.cluster import connect
from fleetplane.runtime.kubernetes.history import read_history
from fleetplane.runtime.kubernetes.rollout import (
    RolloutError,
    rollout_history_kubernetes,
    rollout_undo_kubernetes,
    undo,
)

from .conftest import GATEWAY_IMAGE, Emulator

NS = "agents"
ENV = {"TEST_CRM_TOKEN": "crm-123", "TEST_SUPPORT_BOT_KEY": "sk-fp-support"}
STORE = {"redis-url": "redis://redis:6379/0", "database-url": "postgresql://fp@postgres/fp"}
NEW_IMAGE = "registry.example.com/acme/support-bot:1.5@sha256:" + "9" * 64


def _secrets(fleet: DesiredState) -> SecretValues:
    return read_secret_values(fleet, store_urls=STORE, environ=ENV)


def _image(emulator: Emulator, name: str) -> str:
    deployment = emulator.objects("deployments")[name]
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def test_secret_values_come_from_their_sources(fleet: DesiredState) -> None:
    values = _secrets(fleet)
    assert values.values["agent-support-bot-secrets"] == {"crm-token": "crm-123", "tls-key": "not-a-real-key"}
    assert values.values["agent-support-bot-virtual-key"] == {"key": "sk-fp-support"}
    assert values.values["fleetplane-gateway-store"] == STORE
    assert sorted(values.missing) == [
        "agent-embedder-virtual-key",
        "agent-sandboxed-coder-virtual-key",
        "agent-triage-virtual-key",
    ]
    partial = read_secret_values(fleet, store_urls={"redis-url": "redis://r"}, environ={})
    expected = "crm-token: environment variable TEST_CRM_TOKEN is not set"
    assert partial.missing["agent-support-bot-secrets"] == expected
    assert partial.missing["fleetplane-gateway-store"] == "pass --redis-url and --database-url"
    assert "agent-support-bot-secrets" not in partial.values  # written whole or not at all


def test_apply_then_rollback(
    emulator: Emulator, fleet: DesiredState, options: RenderOptions, tmp_path: Path
) -> None:
    client = connect(emulator.kubeconfig(tmp_path / "kubeconfig", NS), NS)
    first = render_fleet(fleet, options)
    report = apply_rendered(client, first, namespace=NS, secrets=_secrets(fleet))

    assert len(report.applied) == 27  # 30 rendered, 3 virtual-key Secrets without a value not written
    assert sorted(report.skipped) == [
        "agent-embedder-virtual-key",
        "agent-sandboxed-coder-virtual-key",
        "agent-triage-virtual-key",
    ]
    assert report.pruned == [] and report.recorded == ["embedder", "sandboxed-coder", "support-bot", "triage"]
    deployments = emulator.objects("deployments")
    assert sorted(deployments) == [
        "agent-embedder",
        "agent-sandboxed-coder",
        "agent-support-bot",
        "agent-triage",
        "fleetplane-gateway",
    ]
    labels = deployments["agent-support-bot"]["spec"]["template"]["metadata"]["labels"]
    assert labels["fleetplane.dev/revision"] == first.revisions["support-bot"]
    assert emulator.objects("secrets")["agent-support-bot-secrets"]["stringData"]["crm-token"] == "crm-123"
    assert set(emulator.objects("runtimeclasses")) == {"fleetplane-gvisor", "fleetplane-kata"}
    assert "agent-triage" in emulator.objects("scaledobjects")

    # Applying the same render again records nothing new.
    again = apply_rendered(client, first, namespace=NS, secrets=_secrets(fleet))
    assert again.recorded == [] and again.pruned == []

    # A new image, and the HPA swapped for scale to zero: a new revision, the HPA pruned.
    changed = render_fleet(
        fleet,
        RenderOptions(namespace=NS, gateway_image=GATEWAY_IMAGE, agent_images={"support-bot": NEW_IMAGE}),
    )
    changed.objects = [
        o
        for o in changed.objects
        if not (o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == "agent-support-bot")
    ]
    second = apply_rendered(client, changed, namespace=NS, secrets=_secrets(fleet))
    assert second.recorded == ["support-bot"]
    assert second.pruned == ["HorizontalPodAutoscaler/agent-support-bot"]
    assert _image(emulator, "agent-support-bot") == NEW_IMAGE
    assert [e.revision for e in read_history(client, "support-bot", NS)] == [
        first.revisions["support-bot"],
        changed.revisions["support-bot"],
    ]

    # Undo: the previous revision's objects again (the HPA is back), recorded as the newest.
    result = undo(client, "support-bot", NS)
    assert (result.from_revision, result.to_revision) == (
        changed.revisions["support-bot"],
        first.revisions["support-bot"],
    )
    assert "HorizontalPodAutoscaler/agent-support-bot" in result.applied
    assert result.pruned == []
    assert _image(emulator, "agent-support-bot").endswith("@sha256:" + "1" * 64)
    assert "agent-support-bot" in emulator.objects("horizontalpodautoscalers")
    template = emulator.objects("deployments")["agent-support-bot"]["spec"]["template"]
    assert template["metadata"]["labels"]["fleetplane.dev/revision"] == first.revisions["support-bot"]
    # The Secrets are not part of a revision: the undo kept them, values and all.
    kept = emulator.objects("secrets")["agent-support-bot-secrets"]["stringData"]
    assert kept["tls-key"] == "not-a-real-key"
    assert [e.revision for e in read_history(client, "support-bot", NS)][-1] == first.revisions["support-bot"]
    # Other agents were not touched.
    assert _image(emulator, "agent-embedder").endswith("@sha256:" + "3" * 64)

    # Undo again goes forward to the newer revision, as `kubectl rollout undo` does.
    assert undo(client, "support-bot", NS).to_revision == changed.revisions["support-bot"]
    assert _image(emulator, "agent-support-bot") == NEW_IMAGE
    client.close()


def test_undo_errors(emulator: Emulator, fleet: DesiredState, options: RenderOptions, tmp_path: Path) -> None:
    kubeconfig = emulator.kubeconfig(tmp_path / "kubeconfig", NS)
    with pytest.raises(
        RolloutError, match=r"^agent 'support-bot' has no revision history in namespace 'agents'$"
    ):
        rollout_undo_kubernetes("support-bot", namespace=NS, kubeconfig=kubeconfig)
    client = connect(kubeconfig, NS)
    rendered = render_fleet(fleet, options)
    apply_rendered(client, rendered, namespace=NS, secrets=_secrets(fleet))
    revision = rendered.revisions["support-bot"]
    with pytest.raises(RolloutError, match=f"^agent 'support-bot' has no revision before {revision}$"):
        rollout_undo_kubernetes("support-bot", namespace=NS, kubeconfig=kubeconfig)
    with pytest.raises(RolloutError, match=f"has no revision 'abc' \\(known: {revision}\\)$"):
        undo(client, "support-bot", NS, to_revision="abc")
    entries = rollout_history_kubernetes("support-bot", namespace=NS, kubeconfig=kubeconfig)
    assert [e.revision for e in entries] == [revision]
    client.close()


def test_prune_removes_an_agent_no_longer_rendered(
    emulator: Emulator, fleet: DesiredState, options: RenderOptions, tmp_path: Path
) -> None:
    client = connect(emulator.kubeconfig(tmp_path / "kubeconfig", NS), NS)
    rendered = render_fleet(fleet, options)
    apply_rendered(client, rendered, namespace=NS, secrets=_secrets(fleet))
    rendered.objects = [o for o in rendered.objects if "embedder" not in o["metadata"]["name"]]
    del rendered.revisions["embedder"]
    report = apply_rendered(client, rendered, namespace=NS, secrets=_secrets(fleet))
    assert report.pruned == [
        "PodDisruptionBudget/agent-embedder",
        "NetworkPolicy/agent-embedder",
        "Deployment/agent-embedder",
        "Service/agent-embedder",
    ]
    assert "agent-embedder" not in emulator.objects("deployments")
    # Its history stays, so the agent can be brought back.
    assert len(read_history(client, "embedder", NS)) == 1
    client.close()
