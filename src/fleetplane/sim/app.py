"""The simulator as one ASGI application: routing, API keys, and which provider's shape a reply takes.

Paths work with or without the `/v1` prefix, so an SDK's base URL may be the server root or `.../v1`.
A request is answered in Anthropic's shape on `/v1/messages*` or when it carries `anthropic-version`,
otherwise in OpenAI's.
"""

from __future__ import annotations

import uuid

from fleetplane.sim import admin, anthropic_api, openai_api
from fleetplane.sim.anthropic_render import AnthropicDialect
from fleetplane.sim.asgi import Receive, Request, Scope, Send
from fleetplane.sim.config import SimConfig
from fleetplane.sim.engine import Header, SimState, send_error
from fleetplane.sim.errors import SimError
from fleetplane.sim.openai_render import OpenAIDialect
from fleetplane.state.clock import SYSTEM_CLOCK, Clock


class SimApp:
    def __init__(self, config: SimConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self.state = SimState(config, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        req = Request(scope, receive, send)
        await req.read_body()
        if req.path.startswith("/sim/"):
            await admin.handle(self.state, req)
            return
        await self._api(req)

    async def _api(self, req: Request) -> None:
        path = req.path if req.path.startswith("/v1/") else "/v1" + req.path
        anthropic = path.startswith("/v1/messages") or "anthropic-version" in req.headers
        rid = "req_" + uuid.uuid4().hex[:24]
        base: list[Header] = [(b"request-id" if anthropic else b"x-request-id", rid.encode())]
        state = self.state
        dialect = AnthropicDialect(rid) if anthropic else OpenAIDialect(state)
        if not self._authorized(req):
            await send_error(state, req, dialect, _unauthorized(req, anthropic), headers=base)
            return
        method = req.method
        if method == "POST" and path == "/v1/chat/completions":
            await openai_api.chat_completions(state, req, base)
        elif method == "POST" and path == "/v1/messages":
            await anthropic_api.messages(state, req, base, rid)
        elif method == "POST" and path == "/v1/embeddings":
            await openai_api.embeddings(state, req, base)
        elif method == "POST" and path == "/v1/messages/count_tokens":
            await anthropic_api.count_tokens(state, req, base, rid)
        elif method == "GET" and path == "/v1/models":
            if anthropic:
                await anthropic_api.list_models(state, req, base)
            else:
                await openai_api.list_models(state, req, base)
        elif method == "GET" and path.startswith("/v1/models/"):
            name = path.removeprefix("/v1/models/")
            if anthropic:
                await anthropic_api.get_model(state, req, base, rid, name)
            else:
                await openai_api.get_model(state, req, base, name)
        else:
            known = path in ("/v1/chat/completions", "/v1/messages", "/v1/embeddings", "/v1/models")
            status = 405 if known else 404
            message = f"{'Method not allowed' if known else 'Unknown request URL'}: {method} {req.path}."
            error = SimError(status, "not_found" if status == 404 else "invalid_request", message)
            await send_error(state, req, dialect, error, headers=base)

    def _authorized(self, req: Request) -> bool:
        required = self.state.config.require_key
        if required is None:
            return True
        bearer = req.headers.get("authorization", "")
        if bearer[:7].lower() == "bearer " and bearer[7:].strip() == required:
            return True
        return req.headers.get("x-api-key") == required


def _unauthorized(req: Request, anthropic: bool) -> SimError:
    if anthropic:
        return SimError(401, "authentication", "invalid x-api-key")
    bearer = req.headers.get("authorization", "")
    presented = bearer[7:].strip() if bearer[:7].lower() == "bearer " else req.headers.get("x-api-key", "")
    if not presented:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        return SimError(401, "authentication", message)
    masked = (
        presented[:3] + "*" * max(0, len(presented) - 7) + presented[-4:] if len(presented) > 7 else "***"
    )
    message = (
        f"Incorrect API key provided: {masked}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    return SimError(401, "authentication", message, code="invalid_api_key")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
