"""The plan: what applying a desired state would create, update, leave alone and delete.

Documents are compared by the sha256 of their canonical JSON (sorted keys), so formatting, comments
and key order in the YAML never make a change; a real change comes with a field-level diff.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import yaml

from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.errors import render_path

Action = Literal["create", "update", "unchanged", "delete"]

# Referenced kinds come before the kinds that refer to them, so a plan reads top-down.
KIND_ORDER = ("Organization", "Team", "User", "Customer", "Provider", "Model", "VirtualKey")


def canonical_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


class AppliedLike(Protocol):
    """What the plan needs of an applied document (the store's `AppliedDocument` fits)."""

    @property
    def document(self) -> dict[str, Any]: ...

    @property
    def digest(self) -> str: ...


@dataclass(frozen=True)
class FieldChange:
    path: str  # spec.deployments[1].weight
    before: Any  # None with `added`
    after: Any  # None with `removed`
    added: bool = False
    removed: bool = False


@dataclass(frozen=True)
class Change:
    action: Action
    kind: str
    name: str
    digest: str  # of the document after the change (of the removed one for a delete)
    document: dict[str, Any] | None  # desired; None for a delete
    previous: dict[str, Any] | None  # applied; None for a create
    source: str | None = None  # the file it comes from, relative to the directory
    fields: tuple[FieldChange, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    def unified_diff(self) -> list[str]:
        """The change as a unified diff of the two documents in YAML, one line per item."""
        before = _yaml(self.previous) if self.previous is not None else []
        after = _yaml(self.document) if self.document is not None else []
        return list(
            difflib.unified_diff(before, after, f"applied/{self.ref}", f"desired/{self.ref}", lineterm="")
        )


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    # Applied documents missing from the directory that stay because pruning is off.
    kept: tuple[str, ...] = ()

    def of(self, action: Action) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    @property
    def has_changes(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)

    def counts(self) -> dict[Action, int]:
        actions: tuple[Action, ...] = ("create", "update", "unchanged", "delete")
        return {a: len(self.of(a)) for a in actions}


def plan(
    desired: DesiredState, applied: Mapping[tuple[str, str], AppliedLike], *, prune: bool = True
) -> Plan:
    """Compare the directory with what is applied. Without `prune`, documents gone from the directory stay."""
    changes: list[Change] = []
    wanted: set[tuple[str, str]] = set()
    for manifest in desired:
        key = (manifest.kind, manifest.name)
        wanted.add(key)
        document = manifest.to_document()
        new_digest = digest(document)
        source = desired.origin(manifest).relative
        current = applied.get(key)
        if current is None:
            changes.append(Change("create", *key, new_digest, document, None, source))
        elif current.digest != new_digest:
            fields = tuple(diff_fields(current.document, document))
            changes.append(Change("update", *key, new_digest, document, current.document, source, fields))
        else:
            changes.append(Change("unchanged", *key, new_digest, document, current.document, source))
    gone = sorted((key for key in applied if key not in wanted), key=_order)
    kept: tuple[str, ...] = ()
    if prune:
        for key in reversed(gone):
            changes.append(Change("delete", *key, applied[key].digest, None, applied[key].document))
    else:
        kept = tuple(f"{kind}/{name}" for kind, name in gone)
    upserts = sorted((c for c in changes if c.action != "delete"), key=lambda c: _order((c.kind, c.name)))
    return Plan(tuple(upserts + [c for c in changes if c.action == "delete"]), kept)


def diff_fields(before: Any, after: Any, path: tuple[str | int, ...] = ()) -> Iterator[FieldChange]:
    """What differs between two documents, by path: a changed leaf, or a whole added/removed subtree."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(before.keys() | after.keys()):
            here = (*path, str(key))
            if key not in after:
                yield FieldChange(render_path(here), before[key], None, removed=True)
            elif key not in before:
                yield FieldChange(render_path(here), None, after[key], added=True)
            else:
                yield from diff_fields(before[key], after[key], here)
    elif isinstance(before, list) and isinstance(after, list) and before and after:
        for index in range(max(len(before), len(after))):
            here = (*path, index)
            if index >= len(after):
                yield FieldChange(render_path(here), before[index], None, removed=True)
            elif index >= len(before):
                yield FieldChange(render_path(here), None, after[index], added=True)
            else:
                yield from diff_fields(before[index], after[index], here)
    elif before != after or isinstance(before, bool) != isinstance(after, bool):
        yield FieldChange(render_path(path), before, after)


def _order(key: tuple[str, str]) -> tuple[int, str, str]:
    kind, name = key
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return rank, kind, name


def _yaml(document: Mapping[str, Any]) -> list[str]:
    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True).splitlines()
