"""The gateway's part of the admin API: what it serves, its cooldowns, and a reload."""

from __future__ import annotations

from dataclasses import asdict

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetplane.gateway.app import GatewayRuntime
from fleetplane.gateway.quota.report import quota_report
from fleetplane.state.breaker import BreakerStoreUnavailable
from fleetplane.state.kv import KVUnavailable


def _json(value: object, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def admin_routes(runtime: GatewayRuntime) -> list[Route]:
    async def config(_: Request) -> Response:
        groups = []
        for group in runtime.config.groups.values():
            resting = await runtime.cooldowns.remaining([d.id for d in group.deployments()])
            groups.append(
                {
                    "name": group.name,
                    "type": group.type,
                    "family": group.family,
                    "aliases": list(group.aliases),
                    "cache": group.cache_mode,
                    "chain": [
                        [
                            {
                                "deployment": d.id,
                                "weight": d.weight,
                                "api": d.provider.api,
                                "unusable": d.provider.unusable,
                            }
                            for d in step
                        ]
                        for step in group.chain
                    ],
                    "cooldowns": {
                        d.id: left for d, left in zip(group.deployments(), resting, strict=True) if left > 0
                    },
                }
            )
        return _json({"generation": runtime.config.generation, "models": groups})

    async def reload(_: Request) -> Response:
        changed = await runtime.reload()
        await runtime.keys.refresh()
        return _json({"generation": runtime.config.generation, "changed": changed})

    async def flush(_: Request) -> Response:
        """Write queued usage records now (tests, and operators before reading spend)."""
        ledger = runtime.ledger
        try:
            written = await ledger.flush()
        except Exception as exc:
            message = f"the store cannot take the usage records now ({exc}); {ledger.pending} wait in memory"
            return _json({"error": {"message": message}}, 503)
        return _json({"written": written, "pending": ledger.pending, "dropped": ledger.dropped})

    async def quotas(_: Request) -> Response:
        return _json({"quotas": await quota_report(runtime.config.quota_rules, runtime.quota)})

    async def breakers(_: Request) -> Response:
        try:
            snapshots = await runtime.breakers.store.snapshot()
        except BreakerStoreUnavailable as exc:
            return _json({"error": {"message": f"the breaker store cannot be reached: {exc}"}}, 503)
        return _json({"breakers": [asdict(s) for s in snapshots]})

    async def reset_breaker(request: Request) -> Response:
        key = request.path_params["key"]
        try:
            known = await runtime.breakers.store.reset(key)
        except BreakerStoreUnavailable as exc:
            return _json({"error": {"message": f"the breaker store cannot be reached: {exc}"}}, 503)
        if not known:
            return _json({"error": {"message": f"no breaker {key!r} is known"}}, 404)
        return _json({"reset": key})

    async def clear_cooldown(request: Request) -> Response:
        deployment = request.path_params["deployment"]
        try:
            await runtime.cooldowns.clear(deployment)
        except KVUnavailable as exc:
            return _json({"error": {"message": f"the shared state cannot be reached: {exc}"}}, 503)
        return _json({"cleared": deployment})

    return [
        Route("/admin/gateway/config", config, methods=["GET"]),
        Route("/admin/gateway/reload", reload, methods=["POST"]),
        Route("/admin/gateway/flush", flush, methods=["POST"]),
        Route("/admin/quotas", quotas, methods=["GET"]),
        Route("/admin/breakers", breakers, methods=["GET"]),
        Route("/admin/breakers/{key:path}/reset", reset_breaker, methods=["POST"]),
        Route("/admin/gateway/cooldowns/{deployment:path}", clear_cooldown, methods=["DELETE"]),
    ]
