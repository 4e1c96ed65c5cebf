"""The exact-match response cache, per tenant, as a policy: either the first answer tried
(`mode: first`) or the last resort when every deployment failed (`mode: last-resort`).

A key is the hash of the tenant's namespace (team and user or customer: one tenant never sees
another's answers), the model group, the API, and the request body with its keys sorted. Streams are
cached as the exact bytes sent, and replayed as such. Clients opt out per request with
`x-fleetplane-cache: no-cache` (do not answer from the cache), `no-store` (do not store this answer),
or `off` (both); `Cache-Control: no-cache / no-store` mean the same.
"""

from __future__ import annotations

import hashlib
import logging

import orjson

from fleetplane.gateway.context import Reply, RequestContext
from fleetplane.gateway.policy import Policy
from fleetplane.gateway.quietlog import THROTTLED
from fleetplane.state.kv import KV

log = logging.getLogger("fleetplane.gateway")

HEADER = "x-fleetplane-cache"


def _directives(headers: dict[str, str]) -> tuple[bool, bool]:
    """(may read, may write) for this request."""
    words = {w.strip().lower() for w in headers.get(HEADER, "").split(",")}
    words |= {w.strip().lower() for w in headers.get("cache-control", "").split(",")}
    if "off" in words or "bypass" in words:
        return False, False
    return "no-cache" not in words, "no-store" not in words


class ResponseCache(Policy):
    name = "cache"

    def __init__(self, kv: KV) -> None:
        self._kv = kv

    def key(self, ctx: RequestContext) -> str:
        body = {k: v for k, v in ctx.body.items() if k != "model"}
        digest = hashlib.sha256()
        for part in (ctx.tenant.namespace, ctx.group.name, ctx.client_api, ctx.operation):
            digest.update(part.encode())
            digest.update(b"\0")
        digest.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
        return "cache:" + digest.hexdigest()

    async def _lookup(self, ctx: RequestContext) -> Reply | None:
        try:
            value = await self._kv.get(self.key(ctx))
        except Exception as exc:
            THROTTLED.warning("cache-lookup", "cache lookup failed: %s", exc)
            return None
        if value is None:
            return None
        media_type, _, body = value.partition(b"\n")
        return Reply(status=200, body=body, media_type=media_type.decode())

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        if ctx.group.cache_mode == "off":
            return None
        may_read, may_write = _directives(ctx.headers)
        ctx.capture_stream = may_write
        if not may_read:
            ctx.cache_status = "bypass"
            return None
        ctx.cache_status = "miss"
        if ctx.group.cache_mode != "first":
            return None
        reply = await self._lookup(ctx)
        if reply is not None:
            ctx.cache_status = "hit"
        return reply

    async def on_exhausted(self, ctx: RequestContext) -> Reply | None:
        if ctx.group.cache_mode != "last-resort" or ctx.cache_status == "bypass":
            return None
        reply = await self._lookup(ctx)
        if reply is not None:
            ctx.cache_status = "hit"
        return reply

    async def on_complete(self, ctx: RequestContext, reply: Reply | None) -> None:
        if ctx.group.cache_mode == "off" or ctx.cache_status == "hit" or reply is None or reply.status != 200:
            return
        if not ctx.capture_stream:
            return
        try:
            await self._kv.set(
                self.key(ctx), reply.media_type.encode() + b"\n" + reply.body, ctx.group.cache_ttl
            )
        except Exception as exc:
            THROTTLED.warning("cache-store", "cache store failed: %s", exc)
