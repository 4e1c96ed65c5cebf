"""The admin API under `/sim/`, for tests and operators: health, faults opened and closed at run time,
served-traffic stats, and resets. It needs no key, even with `--require-key`: it is a test tool.

    GET    /sim/health               {"status": "ok", "seed", "models", "uptime_s"}
    GET    /sim/config               the effective configuration
    GET    /sim/faults               {"faults": [...]}
    POST   /sim/faults               open a fault → 201 {"id": "flt_1", ...}
    DELETE /sim/faults[/ID]          close one fault, or all → {"cleared": N}
    GET    /sim/stats                per model: requests by status, tokens, streams
    POST   /sim/stats/reset          start counting afresh
    POST   /sim/ratelimits/reset     refill every rate-limit bucket
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from fleetplane.sim.asgi import Request, send_json
from fleetplane.sim.engine import SimState
from fleetplane.sim.faults import FaultSpecError


async def _reply(req: Request, status: int, payload: Any) -> None:
    await send_json(req.send, status, payload)


async def _problem(req: Request, status: int, message: str) -> None:
    await _reply(req, status, {"error": {"message": message}})


async def handle(state: SimState, req: Request) -> None:
    method, path = req.method, req.path.rstrip("/")
    now = state.clock.monotonic()
    if path == "/sim/health" and method == "GET":
        await _reply(
            req,
            200,
            {
                "status": "ok",
                "seed": state.seed,
                "models": list(state.config.models),
                "uptime_s": round(now - state.started, 3),
            },
        )
    elif path == "/sim/config" and method == "GET":
        await _reply(req, 200, state.config.model_dump(mode="json"))
    elif path == "/sim/faults" and method == "GET":
        await _reply(req, 200, {"faults": [f.to_dict(now) for f in state.faults.active()]})
    elif path == "/sim/faults" and method == "POST":
        await _open_fault(state, req)
    elif path == "/sim/faults" and method == "DELETE":
        await _reply(req, 200, {"cleared": state.faults.clear()})
    elif path.startswith("/sim/faults/") and method == "DELETE":
        fault_id = path.removeprefix("/sim/faults/")
        if state.faults.remove(fault_id):
            await _reply(req, 200, {"cleared": 1})
        else:
            await _problem(req, 404, f"no open fault with id {fault_id!r}")
    elif path == "/sim/stats" and method == "GET":
        await _reply(req, 200, state.stats.to_dict())
    elif path == "/sim/stats/reset" and method == "POST":
        state.stats.reset()
        await _reply(req, 200, {"reset": True})
    elif path == "/sim/ratelimits/reset" and method == "POST":
        for limiter in state.limiters.values():
            limiter.reset()
        await _reply(req, 200, {"reset": True})
    else:
        await _problem(req, 404, f"no admin route {method} {req.path}")


async def _open_fault(state: SimState, req: Request) -> None:
    try:
        spec = orjson.loads(req.body or b"{}")
    except orjson.JSONDecodeError as exc:
        await _problem(req, 400, f"body is not valid JSON: {exc}")
        return
    if not isinstance(spec, Mapping):
        await _problem(req, 400, "body must be a JSON object describing the fault")
        return
    try:
        fault = state.faults.add(spec)
    except FaultSpecError as exc:
        await _problem(req, 400, str(exc))
        return
    await _reply(req, 201, fault.to_dict(state.clock.monotonic()))
