"""The fleetplane server: every wing's routes on one ASGI app and one port (`fleetplane up`).

The admin API (`/admin/...`): without `FLEETPLANE_ADMIN_TOKEN` it answers loopback clients only; with it,
every client (loopback too) must present the token as a bearer token. `/admin/health` and `/admin/ready`
are open to all, so probes need no secret. Loopback is decided from the connection's own peer address:
`fleetplane up` runs uvicorn without proxy-header rewriting, so `X-Forwarded-For` cannot forge it, and a
loopback request that carries a forwarding header came through a proxy on this host, so it is not
treated as loopback either.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetplane import __version__
from fleetplane.evals.online.service import EvalsService
from fleetplane.gateway.admin import admin_routes
from fleetplane.gateway.app import GatewayRuntime
from fleetplane.pipelines.service import PipelineService
from fleetplane.runtime.service import AgentService
from fleetplane.skilltools import SkillTools
from fleetplane.telemetry.backend import Backend

# Liveness and readiness say nothing secret; orchestrators probe them without credentials.
OPEN_ADMIN_PATHS = frozenset({"/admin/health", "/admin/ready"})


def is_loopback(host: str | None) -> bool:
    """Whether a peer address is loopback: 127.0.0.0/8, ::1, or IPv4 loopback mapped into IPv6."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False  # a unix socket path or a name: not an address we can vouch for
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def bearer_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The bearer credential of the Authorization header, as raw bytes (the scheme is case-insensitive)."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credential = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and credential.strip():
                return credential.strip()
            return None
    return None


def _relayed(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a proxy relayed the request: then a loopback peer is that proxy, not the real client."""
    return any(name.lower() in (b"forwarded", b"x-forwarded-for") for name, _ in headers)


class AdminGuard:
    """Refuses /admin requests that lack the admin token (when one is set) or do not come from loopback."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        # Bytes: a presented header is compared byte for byte, whatever characters either side holds.
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/admin") and not self._allowed(scope):
            message = (
                "The admin API needs the admin token as a bearer token."
                if self.token
                else "The admin API answers loopback clients only (set FLEETPLANE_ADMIN_TOKEN for others)."
            )
            body = orjson.dumps({"error": {"message": message, "type": "permission_error"}})
            response = Response(body, status_code=403, media_type="application/json")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        if scope["path"] in OPEN_ADMIN_PATHS:
            return True
        if self.token:
            presented = bearer_token(scope.get("headers", []))
            return presented is not None and hmac.compare_digest(presented, self.token)
        client = scope.get("client")
        return client is not None and is_loopback(client[0]) and not _relayed(scope.get("headers", []))


def build_app(
    runtime: GatewayRuntime,
    backend: Backend | None = None,
    agents: AgentService | None = None,
    evals: EvalsService | None = None,
    pipelines: PipelineService | None = None,
    skill_tools: SkillTools | None = None,
) -> ASGIApp:
    """The server: the gateway and its admin API, and — with a telemetry backend — the OTLP receiver
    (`/v1/traces`, `/v1/metrics`, `/v1/logs`) and Prometheus `/metrics`; with an agent service, the
    agents' invoke API (`/agents/{name}/invoke`), their admin API and the reconciler running them."""

    async def health(_: Request) -> Response:
        return Response(orjson.dumps({"status": "ok", "version": __version__}), media_type="application/json")

    async def ready(_: Request) -> Response:
        ok = bool(runtime.config.groups)
        body = {"ready": ok, "generation": runtime.config.generation, "models": len(runtime.config.groups)}
        return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if backend is not None:
            await backend.start()
        await runtime.start()
        if agents is not None:  # after the gateway: the agents' first model calls need it
            await agents.start()
        if evals is not None:  # the online evaluator scores stored spans, after the fact
            await evals.start()
        if pipelines is not None:  # its worker and scheduler; runs call models through the gateway
            await pipelines.start()
        try:
            yield
        finally:
            if pipelines is not None:
                await pipelines.stop()
            if evals is not None:
                await evals.stop()
            if agents is not None:
                await agents.stop()
            await runtime.stop()
            if backend is not None:
                await backend.stop()

    routes = [
        *runtime.routes(),
        Route("/admin/health", health, methods=["GET"]),
        Route("/admin/ready", ready, methods=["GET"]),
        *admin_routes(runtime),
        *(backend.routes() if backend is not None else []),
        *(agents.routes() if agents is not None else []),
        *(evals.routes() if evals is not None else []),
        *(pipelines.routes() if pipelines is not None else []),
        *(skill_tools.routes() if skill_tools is not None else []),  # declarative agents' tools
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    return AdminGuard(app, os.environ.get("FLEETPLANE_ADMIN_TOKEN") or None)
