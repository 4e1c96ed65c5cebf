"""The fleetplane server: every wing's routes on one ASGI app and one port (`fleetplane up`).

The admin API (`/admin/...`) answers loopback clients, or anyone presenting `FLEETPLANE_ADMIN_TOKEN`
as a bearer token when that variable is set.
"""

from __future__ import annotations

import hmac
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
from fleetplane.gateway.admin import admin_routes
from fleetplane.gateway.app import GatewayRuntime

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class AdminGuard:
    """Refuses /admin requests that are neither from loopback nor carry the admin token."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/admin") and not self._allowed(scope):
            body = orjson.dumps(
                {"error": {"message": "The admin API needs the admin token.", "type": "permission_error"}}
            )
            response = Response(body, status_code=403, media_type="application/json")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        if self.token:
            for name, value in scope.get("headers", []):
                if name == b"authorization":
                    presented = value.decode("latin-1").removeprefix("Bearer ").strip()
                    return hmac.compare_digest(presented, self.token)
            return False
        client = scope.get("client")
        return client is not None and client[0] in _LOOPBACK


def build_app(runtime: GatewayRuntime) -> ASGIApp:
    async def health(_: Request) -> Response:
        return Response(orjson.dumps({"status": "ok", "version": __version__}), media_type="application/json")

    async def ready(_: Request) -> Response:
        ok = bool(runtime.config.groups)
        body = {"ready": ok, "generation": runtime.config.generation, "models": len(runtime.config.groups)}
        return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    routes = [
        *runtime.routes(),
        Route("/admin/health", health, methods=["GET"]),
        Route("/admin/ready", ready, methods=["GET"]),
        *admin_routes(runtime),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    return AdminGuard(app, os.environ.get("FLEETPLANE_ADMIN_TOKEN") or None)
