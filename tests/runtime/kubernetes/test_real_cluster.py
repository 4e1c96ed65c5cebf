"""Against a real cluster: only where KUBECONFIG points at one (never on these machines, which cannot run
an API server). Applies the test fleet into a fresh namespace with a server-side dry run first, then for
real, rolls back, and deletes the namespace."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetplane.manifests.desired import DesiredState
from fleetplane.runtime.kubernetes import RenderOptions, render_fleet
from fleetplane.runtime.kubernetes.apply import apply_rendered, read_secret_values
from fleetplane.runtime.kubernetes.cluster import connect, resource_class, to_resource
from fleetplane.runtime.kubernetes.history import read_history
from fleetplane.runtime.kubernetes.rollout import undo

from .conftest import GATEWAY_IMAGE

KUBECONFIG = os.environ.get("KUBECONFIG", "")

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not KUBECONFIG or not Path(KUBECONFIG).is_file(),
        reason="no real cluster: set KUBECONFIG to a kubeconfig file for a disposable cluster to run these",
    ),
]


@pytest.fixture
def namespace() -> Iterator[tuple[Any, str]]:
    pytest.importorskip("lightkube")
    name = f"fleetplane-test-{uuid.uuid4().hex[:8]}"
    client = connect(KUBECONFIG, name)
    namespace_class = resource_class("v1", "Namespace")
    client.create(to_resource({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    try:
        yield client, name
    finally:
        client.delete(namespace_class, name)
        client.close()


def test_apply_and_undo_on_a_real_cluster(namespace: tuple[Any, str], fleet: DesiredState) -> None:
    client, name = namespace
    # RuntimeClasses are cluster-wide and KEDA may be absent: apply only the namespaced core objects.
    rendered = render_fleet(fleet, RenderOptions(namespace=name, gateway_image=GATEWAY_IMAGE))
    rendered.objects = [o for o in rendered.objects if o["kind"] not in ("RuntimeClass", "ScaledObject")]
    secrets = read_secret_values(
        fleet,
        store_urls={"redis-url": "redis://r", "database-url": "postgresql://p"},
        environ={"TEST_CRM_TOKEN": "x", "TEST_SUPPORT_BOT_KEY": "k"},
    )
    report = apply_rendered(client, rendered, namespace=name, secrets=secrets)
    assert "Deployment/agent-support-bot" in report.applied
    changed = render_fleet(
        fleet,
        RenderOptions(
            namespace=name,
            gateway_image=GATEWAY_IMAGE,
            agent_images={"support-bot": "registry.example.com/acme/support-bot@sha256:" + "9" * 64},
        ),
    )
    changed.objects = [o for o in changed.objects if o["kind"] not in ("RuntimeClass", "ScaledObject")]
    apply_rendered(client, changed, namespace=name, secrets=secrets)
    assert len(read_history(client, "support-bot", name)) == 2
    result = undo(client, "support-bot", name)
    assert result.to_revision == rendered.revisions["support-bot"]
    deployment = client.get(resource_class("apps/v1", "Deployment"), "agent-support-bot", namespace=name)
    assert deployment.spec.template.spec.containers[0].image.endswith("1" * 64)
