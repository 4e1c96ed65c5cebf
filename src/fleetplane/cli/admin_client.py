"""Talking to a running fleetplane server's admin API: live state that only the server holds
(quota counters, breaker states) is read there, not from the store."""

from __future__ import annotations

import os
from typing import Annotated, Any

import httpx
import typer

from fleetplane.cli.common import FAILED, fail

ServerURL = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="FLEETPLANE_URL",
        show_envvar=True,
        help="The fleetplane server to ask (its admin API).",
    ),
]
DEFAULT_SERVER = "http://127.0.0.1:8700"


class ServerUnreachable(Exception):
    pass


def admin(server: str, method: str, path: str) -> Any:
    """JSON from the admin API; a server that is not running raises `ServerUnreachable`."""
    headers = {}
    token = os.environ.get("FLEETPLANE_ADMIN_TOKEN")
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = httpx.request(method, server.rstrip("/") + path, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise ServerUnreachable(f"no fleetplane server answers at {server} ({exc})") from exc
    if response.status_code == 403:
        fail(f"{server} refused the admin API: set FLEETPLANE_ADMIN_TOKEN to its admin token", code=FAILED)
    try:
        body = response.json()
    except ValueError:
        fail(f"{server}{path} answered {response.status_code} with no JSON", code=FAILED)
    if response.status_code >= 400:
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        fail(message or f"{server}{path} answered {response.status_code}", code=FAILED)
    return body
