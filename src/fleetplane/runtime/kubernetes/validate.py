"""Schema validation of rendered objects with kubernetes-validate (strict: unknown fields are errors),
in process. Custom resources (KEDA's ScaledObject) have no schema there; the lint covers them."""

from __future__ import annotations

from typing import Any

from fleetplane.runtime.kubernetes.deps import require

CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}


def supported_versions() -> list[str]:
    """The Kubernetes minor versions whose schemas the installed kubernetes-validate ships, oldest first."""
    utils = require("kubernetes_validate.utils")
    minors: dict[str, None] = {}
    for version in utils.all_versions():
        minors.setdefault(utils.major_minor(version), None)
    return list(minors)


def validate_objects(objects: list[dict[str, Any]], version: str) -> list[str]:
    """One line per object that fails strict validation for Kubernetes `version` (e.g. '1.28')."""
    kv = require("kubernetes_validate")
    problems = []
    for obj in objects:
        if (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_KINDS:
            continue
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "(root)"
            problems.append(f"{name}: {where}: {exc.message} (Kubernetes {version})")
        except kv.SchemaNotFoundError as exc:
            problems.append(f"{name}: {exc.message}")
    return problems
