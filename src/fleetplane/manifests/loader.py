"""Load the desired state from a file or a directory tree, or say everything that is wrong with it.

Every `*.yaml` / `*.yml` file (and `*.pipeline.md`: a Pipeline in Markdown) under the directory is read,
recursively, in path order; hidden directories (and so `.fleetplane/`) are not. A document with neither
`apiVersion` nor `kind` is not a manifest and is skipped. All errors of all files are collected; if there
is any, no `DesiredState` is made and one `ManifestErrors` carries them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from fleetplane.manifests.desired import DesiredState, Origin, Skipped
from fleetplane.manifests.document import KINDS, Manifest
from fleetplane.manifests.errors import ManifestError, ManifestErrors
from fleetplane.manifests.pipeline_md import MARKDOWN_SUFFIX, read_markdown
from fleetplane.manifests.provider import Provider
from fleetplane.manifests.references import Declared, check_references
from fleetplane.manifests.source import YamlDocument, read_yaml
from fleetplane.manifests.validate import is_manifest, validate_document

YAML_SUFFIXES = (".yaml", ".yml")
NOT_A_MANIFEST = "not a manifest (no apiVersion or kind)"


def load(path: str | Path) -> DesiredState:
    """The validated manifests under `path` (a directory or one file); raises `ManifestErrors`."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no such file or directory: {root}")
    directory = root if root.is_dir() else root.parent
    files = [(root / rel if root.is_dir() else root, rel) for rel in _relative_files(root)]

    errors: list[ManifestError] = []
    skipped: list[Skipped] = []
    documents: list[tuple[YamlDocument, str]] = []
    for file, rel in files:
        read = read_markdown if file.name.endswith(MARKDOWN_SUFFIX) else read_yaml
        docs, read_errors = read(file, str(file))
        errors.extend(read_errors)
        for doc in docs:
            if doc.data is None:
                continue  # an empty document, e.g. after a trailing '---'
            if is_manifest(doc.data):
                documents.append((doc, rel))
            else:
                skipped.append(Skipped(doc.file, doc.start.line, NOT_A_MANIFEST))

    declared = _declared(doc for doc, _ in documents)
    first: dict[tuple[str, str], YamlDocument] = {}
    valid: list[tuple[Manifest, YamlDocument, str]] = []
    for doc, rel in documents:
        manifest, doc_errors = validate_document(doc)
        errors.extend(doc_errors)
        identity = _identity(doc)
        if identity is not None:
            if identity in first:
                errors.append(_duplicate(doc, first[identity], identity))
                continue
            first[identity] = doc
        if manifest is not None:
            valid.append((manifest, doc, rel))

    errors.extend(check_references([(m, doc) for m, doc, _ in valid], declared))
    if errors:
        order = {str(file): i for i, (file, _) in enumerate(files)}
        errors.sort(key=lambda e: (order.get(e.file, len(order)), e.line, e.column))
        raise ManifestErrors(errors)
    entries = [(_anchor(m, doc.path.parent), _origin(doc, rel)) for m, doc, rel in valid]
    return DesiredState(directory, entries, skipped=skipped, files=[str(f) for f, _ in files])


def _relative_files(root: Path) -> list[str]:
    """The YAML files to read, relative to `root` and '/'-separated, in a stable order."""
    if root.is_file():
        return [root.name]
    found: list[str] = []
    for here, dirs, names in os.walk(root):
        # Hidden directories hold state and tooling (.fleetplane/, .git/), never manifests.
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(here).relative_to(root)
        found.extend(
            (base / n).as_posix()
            for n in names
            if n.endswith((*YAML_SUFFIXES, MARKDOWN_SUFFIX)) and not n.startswith(".")
        )
    return sorted(found, key=lambda rel: rel.split("/"))


def _identity(doc: YamlDocument) -> tuple[str, str] | None:
    kind = doc.data.get("kind")
    metadata = doc.data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(kind, str) and kind in KINDS and isinstance(name, str):
        return kind, name
    return None


def _declared(documents: Iterator[YamlDocument]) -> Declared:
    declared = Declared()
    for doc in documents:
        identity = _identity(doc)
        if identity is None:
            continue
        declared.add(*identity)
        spec = doc.data.get("spec")
        aliases = spec.get("aliases") if identity[0] == "Model" and isinstance(spec, dict) else None
        if isinstance(aliases, list):
            declared.aliases.update(a for a in aliases if isinstance(a, str))
    return declared


def _duplicate(doc: YamlDocument, first: YamlDocument, identity: tuple[str, str]) -> ManifestError:
    ref = "/".join(identity)
    at = doc.locate(("metadata", "name"))
    there = first.locate(("metadata", "name"))
    problem = f"{ref} is defined twice; first at {first.file}:{there.line}:{there.column}"
    return ManifestError(doc.file, at.line, at.column, ref, "metadata.name", problem=problem)


def _anchor(manifest: Manifest, base: Path) -> Manifest:
    """A provider's key file is read by every server at run time, far from the directory it was written
    in: a relative path is made absolute against the manifest's directory, as `apply` reads key files."""
    if isinstance(manifest, Provider) and manifest.spec.api_key and manifest.spec.api_key.file:
        file = Path(manifest.spec.api_key.file)
        if not file.is_absolute():
            key = manifest.spec.api_key.model_copy(update={"file": str((base / file).resolve())})
            spec = manifest.spec.model_copy(update={"api_key": key})
            return manifest.model_copy(update={"spec": spec})
    return manifest


def _origin(doc: YamlDocument, rel: str) -> Origin:
    start = doc.start
    return Origin(doc.file, doc.path, rel, start.line, start.column, doc.index)
