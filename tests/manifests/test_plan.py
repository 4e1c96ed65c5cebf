"""The plan: create / update (with field diffs) / unchanged / delete, compared by canonical digest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.loader import load
from fleetplane.manifests.plan import FieldChange, diff_fields, digest, plan

FLEET = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {name: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {name: support}
spec: {organization: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata: {name: openai}
spec: {type: openai-compatible, baseURL: "https://api.openai.com/v1"}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: chat}
spec:
  family: gpt
  contextWindow: 128000
  deployments:
    - {provider: openai, model: gpt-4o-mini}
"""


@dataclass(frozen=True)
class Applied:
    document: dict[str, Any]
    digest: str


def applied_from(desired: DesiredState) -> dict[tuple[str, str], Applied]:
    return {(m.kind, m.name): Applied(m.to_document(), digest(m.to_document())) for m in desired.manifests}


def fleet(tmp_path: Path, text: str = FLEET) -> DesiredState:
    (tmp_path / "fleet.yaml").write_text(text)
    return load(tmp_path)


def test_everything_is_created_in_dependency_order(tmp_path: Path) -> None:
    result = plan(fleet(tmp_path), {})

    assert [(c.action, c.ref) for c in result.changes] == [
        ("create", "Organization/acme"),
        ("create", "Team/support"),
        ("create", "Provider/openai"),
        ("create", "Model/chat"),
    ]
    assert result.has_changes
    assert all(c.source == "fleet.yaml" and c.previous is None for c in result.changes)
    assert result.counts() == {"create": 4, "update": 0, "unchanged": 0, "delete": 0}


def test_the_same_documents_are_unchanged(tmp_path: Path) -> None:
    desired = fleet(tmp_path)

    result = plan(desired, applied_from(desired))

    assert {c.action for c in result.changes} == {"unchanged"}
    assert not result.has_changes


def test_key_order_and_formatting_do_not_make_a_change(tmp_path: Path) -> None:
    before = fleet(tmp_path)
    reordered = FLEET.replace(
        'spec: {type: openai-compatible, baseURL: "https://api.openai.com/v1"}',
        "spec:\n  # the same provider, written differently\n  baseURL: https://api.openai.com/v1\n"
        "  type: openai-compatible",
    )

    result = plan(fleet(tmp_path, reordered), applied_from(before))

    assert not result.has_changes


def test_an_update_lists_the_fields_that_changed(tmp_path: Path) -> None:
    before = fleet(tmp_path)
    changed = FLEET.replace("contextWindow: 128000", "contextWindow: 64000\n  aliases: [fast]").replace(
        "model: gpt-4o-mini}", "model: gpt-4o-mini, weight: 3}"
    )

    result = plan(fleet(tmp_path, changed), applied_from(before))

    (update,) = result.of("update")
    assert update.ref == "Model/chat"
    assert update.fields == (
        FieldChange("spec.aliases", [], ["fast"]),
        FieldChange("spec.contextWindow", 128000, 64000),
        FieldChange("spec.deployments[0].weight", 1.0, 3.0),
    )
    diff = update.unified_diff()
    assert diff[:2] == ["--- applied/Model/chat", "+++ desired/Model/chat"]
    assert "-  contextWindow: 128000" in diff
    assert "+  contextWindow: 64000" in diff


def test_documents_gone_from_the_directory_are_deleted_last_in_reverse_order(tmp_path: Path) -> None:
    before = fleet(tmp_path)
    only_org = FLEET.split("---")[0]

    result = plan(fleet(tmp_path, only_org), applied_from(before))

    assert [(c.action, c.ref) for c in result.changes] == [
        ("unchanged", "Organization/acme"),
        ("delete", "Model/chat"),
        ("delete", "Provider/openai"),
        ("delete", "Team/support"),
    ]
    assert result.of("delete")[0].document is None
    assert result.kept == ()


def test_without_prune_they_are_kept(tmp_path: Path) -> None:
    before = fleet(tmp_path)

    result = plan(fleet(tmp_path, FLEET.split("---")[0]), applied_from(before), prune=False)

    assert result.of("delete") == []
    assert result.kept == ("Team/support", "Provider/openai", "Model/chat")
    assert not result.has_changes


def test_digest_is_the_sha256_of_sorted_compact_json() -> None:
    import hashlib

    assert digest({"b": 1, "a": [1, "é"]}) == hashlib.sha256('{"a":[1,"é"],"b":1}'.encode()).hexdigest()
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})


def test_field_diff_marks_added_and_removed_leaves() -> None:
    before = {"spec": {"a": 1, "list": [1, 2, 3], "gone": {"x": True}, "more": [{"y": 1}]}}
    after = {"spec": {"a": 1, "list": [1, 5], "new": {"n": 1}, "more": [{"y": 1}, {"y": 2}]}}

    assert list(diff_fields(before, after)) == [
        FieldChange("spec.gone", {"x": True}, None, removed=True),
        FieldChange("spec.list[1]", 2, 5),
        FieldChange("spec.list[2]", 3, None, removed=True),
        FieldChange("spec.more[1]", None, {"y": 2}, added=True),
        FieldChange("spec.new", None, {"n": 1}, added=True),
    ]


def test_a_boolean_replacing_a_number_is_a_change() -> None:
    assert list(diff_fields({"a": 1}, {"a": True})) == [FieldChange("a", 1, True)]
