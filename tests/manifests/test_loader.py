"""Loading a valid directory: which files are read, in what order, and what the DesiredState offers."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetplane.manifests.desired import Skipped
from fleetplane.manifests.errors import ManifestErrors
from fleetplane.manifests.kinds import Model, Organization, Provider, Team
from fleetplane.manifests.loader import load

ORG = "apiVersion: fleetplane.dev/v1alpha1\nkind: Organization\nmetadata: {name: %s}\n"
TEAM = "apiVersion: fleetplane.dev/v1alpha1\nkind: Team\nmetadata: {name: %s}\nspec: {organization: acme}\n"


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_reads_every_yaml_file_recursively_in_path_order(tmp_path: Path) -> None:
    # Paths sort component by component: everything in a/ comes before a.yaml.
    write(
        tmp_path,
        {
            "z.yaml": TEAM % "zeta",
            "a/b.yml": TEAM % "beta",
            "a.yaml": ORG % "acme",
            "a/c/d.yaml": TEAM % "delta",
            "notes.txt": "not yaml",
        },
    )

    desired = load(tmp_path)

    assert [m.name for m in desired] == ["beta", "delta", "acme", "zeta"]
    assert desired.files == [str(tmp_path / p) for p in ("a/b.yml", "a/c/d.yaml", "a.yaml", "z.yaml")]
    assert desired.directory == tmp_path


def test_hidden_directories_and_the_state_directory_are_not_read(tmp_path: Path) -> None:
    broken = "kind: Nope\n"
    write(
        tmp_path,
        {
            "org.yaml": ORG % "acme",
            ".fleetplane/state.yaml": broken,
            ".git/x.yaml": broken,
            "sub/.hidden/y.yaml": broken,
            ".editor.yaml": broken,
        },
    )

    assert [m.ref for m in load(tmp_path)] == ["Organization/acme"]


def test_multi_document_files_and_skipped_documents(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "fleet.yaml": ORG % "acme" + "---\n" + TEAM % "support" + "---\n---\n",
            "sim.yaml": "rate: 10\nlatency: {p50: 0.2}\n",
            "cases.yaml": "- input: hello\n  expected: hi\n",
        },
    )

    desired = load(tmp_path)

    assert [m.ref for m in desired] == ["Organization/acme", "Team/support"]
    assert desired.skipped == [
        Skipped(str(tmp_path / "cases.yaml"), 1, "not a manifest (no apiVersion or kind)"),
        Skipped(str(tmp_path / "sim.yaml"), 1, "not a manifest (no apiVersion or kind)"),
    ]
    origin = desired.origin(desired.get(Team, "support") or pytest.fail("no team"))
    assert (origin.relative, origin.line, origin.column, origin.document) == ("fleet.yaml", 5, 1, 1)


def test_lookups_by_kind_and_name(tmp_path: Path) -> None:
    write(tmp_path, {"fleet.yaml": ORG % "acme" + "---\n" + TEAM % "support" + "---\n" + TEAM % "research"})

    desired = load(tmp_path)

    team = desired.get(Team, "support")
    assert isinstance(team, Team) and team.spec.organization == "acme"
    assert desired.get("Team", "research") is not None
    assert desired.get(Team, "sales") is None
    assert [t.name for t in desired.of_kind(Team)] == ["support", "research"]
    assert desired.of_kind("Organization") == [desired.get(Organization, "acme")]
    assert desired.counts() == {"Organization": 1, "Team": 2}
    assert len(desired) == 3


def test_a_single_file_can_be_loaded(tmp_path: Path) -> None:
    write(tmp_path, {"one.yaml": ORG % "acme", "other.yaml": "kind: Broken\n"})

    desired = load(tmp_path / "one.yaml")

    assert [m.ref for m in desired] == ["Organization/acme"]
    assert desired.directory == tmp_path
    assert desired.origin(desired.manifests[0]).relative == "one.yaml"


def test_a_missing_path_is_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        load(tmp_path / "nope")


def test_an_empty_directory_is_an_empty_state(tmp_path: Path) -> None:
    assert len(load(tmp_path)) == 0


def test_sim_config_and_base_dir_are_relative_to_the_manifest(tmp_path: Path) -> None:
    provider = (
        "apiVersion: fleetplane.dev/v1alpha1\nkind: Provider\nmetadata: {name: sim}\n"
        "spec: {type: sim, sim: {config: sim.yaml, seed: 7}}\n"
    )
    write(tmp_path, {"providers/p.yaml": provider, "providers/sim.yaml": "rate: 1\n"})

    desired = load(tmp_path)

    sim = desired.get(Provider, "sim")
    assert sim is not None and sim.spec.sim is not None
    assert desired.base_dir(sim) / sim.spec.sim.config == tmp_path / "providers" / "sim.yaml"


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    text = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata: {name: p}
spec: {type: openai-compatible, baseURL: "https://x.dev"}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: m}
spec:
  family: gpt
  contextWindow: 1000
  deployments:
    - &base {provider: p, model: a, weight: 2}
    - <<: *base
      model: b
  cache: {mode: off, ttl: 1m}
"""
    write(tmp_path, {"m.yaml": text})

    model = load(tmp_path).get(Model, "m")

    assert model is not None
    assert [(d.model, d.weight) for d in model.spec.deployments] == [("a", 2.0), ("b", 2.0)]
    assert (model.spec.cache.mode, model.spec.cache.ttl) == ("off", 60.0)


def test_nothing_is_returned_when_any_file_is_invalid(tmp_path: Path) -> None:
    write(tmp_path, {"good.yaml": ORG % "acme", "bad.yaml": TEAM % "Bad_Name"})

    with pytest.raises(ManifestErrors) as caught:
        load(tmp_path)

    assert len(caught.value.errors) == 1
    assert str(caught.value).startswith(f"{tmp_path / 'bad.yaml'}:3:18: Team/Bad_Name: metadata.name:")
