"""Deployment cooldowns (L3): a deployment that answered 429/5xx or timed out rests for a while.

Marks live in the shared KV (Redis when configured), so every replica stops sending to a deployment
the moment one of them saw it fail. A KV that cannot be reached is treated as "no cooldown": routing
keeps working and the upstream's own answers still steer it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fleetplane.gateway.quietlog import THROTTLED
from fleetplane.state.kv import KV

log = logging.getLogger("fleetplane.gateway")


class Cooldowns:
    def __init__(self, kv: KV) -> None:
        self._kv = kv

    @staticmethod
    def _key(deployment_id: str) -> str:
        return f"cooldown:{deployment_id}"

    async def mark(self, deployment_id: str, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            current = (await self._kv.remaining([self._key(deployment_id)]))[0]
            if current is None or current < seconds:
                await self._kv.set(self._key(deployment_id), b"1", seconds)
        except Exception as exc:
            THROTTLED.warning("cooldown-mark", "could not record cooldown of %s: %s", deployment_id, exc)

    async def remaining(self, deployment_ids: Sequence[str]) -> list[float]:
        """Seconds each deployment still rests (0 when it is available)."""
        try:
            left = await self._kv.remaining([self._key(d) for d in deployment_ids])
        except Exception as exc:
            THROTTLED.warning("cooldown-read", "could not read cooldowns: %s", exc)
            return [0.0] * len(deployment_ids)
        return [value or 0.0 for value in left]

    async def clear(self, deployment_id: str) -> None:
        await self._kv.delete(self._key(deployment_id))
