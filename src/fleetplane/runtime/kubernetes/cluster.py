"""Talking to a cluster: a lightkube client from a kubeconfig, and rendered dicts as lightkube objects."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from fleetplane.runtime.kubernetes.deps import require

FIELD_MANAGER = "fleetplane"


class ClusterError(RuntimeError):
    """The cluster cannot be reached or refused a request; the message says which and why."""


def connect(kubeconfig: str | Path | None = None, namespace: str | None = None) -> Any:
    """A lightkube `Client`: from `kubeconfig` when given, else as kubectl finds one (in-cluster,
    $KUBECONFIG, ~/.kube/config). Server-side applies are made as the 'fleetplane' field manager."""
    lightkube = require("lightkube")
    try:
        if kubeconfig is not None:
            config = lightkube.KubeConfig.from_file(str(kubeconfig))
        else:
            config = lightkube.KubeConfig.from_env()
        return lightkube.Client(config, namespace=namespace, field_manager=FIELD_MANAGER)
    except (
        lightkube.ConfigError,
        OSError,
        yaml.YAMLError,
        LookupError,
        TypeError,
        ValueError,
        AssertionError,
    ) as exc:
        # A kubeconfig of the wrong shape fails anywhere in lightkube's parsing: say which file, and why.
        where = kubeconfig or "the environment ($KUBECONFIG, ~/.kube/config)"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ClusterError(f"cannot use the kubeconfig from {where}: {reason}") from None


@cache
def _custom_resources() -> None:
    # KEDA's ScaledObject is not built in: lightkube needs a class for it before it can load the kind.
    generic = require("lightkube.generic_resource")
    generic.create_namespaced_resource("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects")


def resource_class(api_version: str, kind: str) -> Any:
    _custom_resources()
    return require("lightkube.core.resource_registry").resource_registry.load(api_version, kind)


def to_resource(obj: dict[str, Any]) -> Any:
    _custom_resources()
    return require("lightkube.codecs").from_dict(obj)


def api_error() -> type[Exception]:
    """What a refused request raises. lightkube makes an `ApiError` only of a response typed exactly
    `application/json`; any other (a proxy's, `...; charset=utf-8`) stays the HTTP client's status
    error, which `ApiError` derives from: catch that."""
    error: type[Exception] = require("lightkube.core.generic_client").httpx.HTTPStatusError
    return error


def transport_error() -> type[Exception]:
    """What an unreachable API server raises (connection refused, timeout, TLS)."""
    error: type[Exception] = require("lightkube.core.generic_client").httpx.TransportError
    return error


def status_code(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def describe(exc: Exception) -> str:
    """An API error as one line: the code and the server's Status message."""
    message = getattr(getattr(exc, "status", None), "message", None)
    if message is None:
        try:
            message = getattr(exc, "response").json().get("message")  # noqa: B009
        except (AttributeError, ValueError):
            message = None
    return f"{status_code(exc)}: {message or exc}"
