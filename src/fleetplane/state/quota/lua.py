"""The quota scripts on a Redis server: `scripts/<name>.lua` with the shared `scripts/windows.lua` and
`scripts/reservations.lua` prepended (plain SCRIPT LOAD has no shared libraries, and Redis Functions would
make every deployment manage a library).

A script runs by EVALSHA of its SHA-1, computed here; a server that does not have it (first use, restart,
failover, SCRIPT FLUSH) answers NOSCRIPT, and the script is loaded with SCRIPT LOAD and run again. Every
Redis or network error leaves this module as `QuotaStoreUnavailable`, the one failure the caller handles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from fleetplane.state.quota.store import QuotaStoreUnavailable

NAMES = ("admit", "extend", "commit", "settle", "expire", "usage")
SHARED = ("windows", "reservations")  # in this order: the second uses the first


def script_source(name: str) -> str:
    folder = resources.files("fleetplane.state.quota") / "scripts"
    return "\n".join((folder / f"{part}.lua").read_text() for part in (*SHARED, name))


class Scripts:
    def __init__(self, client: Any) -> None:
        self._client = client
        self._sources = {name: script_source(name) for name in NAMES}
        self._shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in self._sources.items()}

    async def run(self, name: str, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        try:
            try:
                return await self._client.evalsha(self._shas[name], len(keys), *keys, *args)
            except NoScriptError:
                await self._client.script_load(self._sources[name])
                return await self._client.evalsha(self._shas[name], len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            raise QuotaStoreUnavailable(f"quota store ({name}): {exc}") from exc
