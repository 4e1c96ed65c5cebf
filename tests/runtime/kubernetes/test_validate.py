"""Every rendered object passes `kubernetes-validate --strict` for the oldest and the newest Kubernetes
version its installed schemas cover (in process, through its Python API)."""

from __future__ import annotations

import copy

import pytest

from fleetplane.manifests.agent import Agent
from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.loader import load
from fleetplane.runtime.kubernetes import RenderOptions, lint, render_fleet, validate

from .conftest import DIGEST, EXAMPLE_FLEET, GATEWAY_IMAGE, need

need("kubernetes_validate", "fleetplane[kubernetes]")

VERSIONS = validate.supported_versions()
# The oldest and newest schemas shipped, and 1.28 (the oldest release still widely run) in between.
OLDEST_AND_NEWEST = sorted({VERSIONS[0], "1.28", VERSIONS[-1]}, key=lambda v: tuple(map(int, v.split("."))))


def test_schemas_cover_the_versions_we_claim() -> None:
    # docs/kubernetes.md names these; a kubernetes-validate without them must fail here, not skip.
    assert "1.28" in VERSIONS
    assert VERSIONS[0] <= "1.28" and VERSIONS[-1] >= "1.33"


@pytest.mark.parametrize("version", OLDEST_AND_NEWEST)
def test_test_fleet_is_valid(fleet: DesiredState, options: RenderOptions, version: str) -> None:
    objects = render_fleet(fleet, options).objects
    assert len(objects) == 30
    assert validate.validate_objects(objects, version) == []


@pytest.mark.parametrize("version", OLDEST_AND_NEWEST)
def test_example_fleet_is_valid(version: str) -> None:
    desired = load(EXAMPLE_FLEET)
    # The example's bring-your-own agents run host commands locally; on Kubernetes each names an image.
    images = {
        a.name: f"registry.example.com/examples/{a.name}@{DIGEST}"
        for a in desired.of_kind(Agent)
        if a.spec.run is not None
    }
    rendered = render_fleet(desired, RenderOptions(gateway_image=GATEWAY_IMAGE, agent_images=images))
    assert validate.validate_objects(rendered.objects, version) == []
    assert lint(rendered.objects) == []


def test_a_wrong_field_is_caught(fleet: DesiredState, options: RenderOptions) -> None:
    objects = copy.deepcopy(render_fleet(fleet, options).objects)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    deployment["spec"]["strategy"]["rollingUpdate"]["maxSurgeCount"] = 1
    problems = validate.validate_objects([deployment], VERSIONS[-1])
    assert len(problems) == 1
    assert problems[0].startswith("Deployment/agent-embedder: ")
    assert problems[0].endswith(f"(Kubernetes {VERSIONS[-1]})")


def test_a_newer_field_fails_the_oldest_schema(fleet: DesiredState, options: RenderOptions) -> None:
    # Proves the two versions are really different schemas: PodDisruptionBudget's
    # unhealthyPodEvictionPolicy exists from 1.26 on, so it is an unknown field for 1.25.
    pdb = copy.deepcopy(
        next(o for o in render_fleet(fleet, options).objects if o["kind"] == "PodDisruptionBudget")
    )
    pdb["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    assert validate.validate_objects([pdb], VERSIONS[-1]) == []
    assert validate.validate_objects([pdb], "1.25") == [
        f"PodDisruptionBudget/{pdb['metadata']['name']}: spec: Additional properties are not allowed "
        "('unhealthyPodEvictionPolicy' was unexpected) (Kubernetes 1.25)"
    ]
