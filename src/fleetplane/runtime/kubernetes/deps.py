"""The optional `kubernetes` extra, imported only when a command talks to a cluster or validates."""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = "pip install 'fleetplane[kubernetes]'"


class KubernetesExtraMissing(RuntimeError):
    """A package of the `kubernetes` extra is not installed; the message says how to install it."""


def require(module: str) -> ModuleType:
    """Import `module` (lightkube, kubernetes_validate ...) or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0].replace("_", "-")
        raise KubernetesExtraMissing(
            f"the Kubernetes backend needs {package}, which is not installed: {INSTALL_HINT}"
        ) from exc
