"""A pipeline worker in its own process, for crash-window tests: `python crash_worker.py DB_URL SINK_ROOT`.

It drains every claimable run with the in-test skill catalog; with `FLEETPLANE_PIPELINES_FAULT` set it
kills itself with SIGKILL at that point, like a machine that dies.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fakeskills import FakeCatalog

from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.worker import Worker
from fleetplane.store.db import Store


async def main(url: str, sink_root: str) -> None:
    store = await Store.open(url, run_migrations=False)
    catalog = FakeCatalog()
    deps = Deps(store=store, catalogs=lambda _signed: catalog, sink_root=Path(sink_root))
    try:
        await Worker(deps, owner="doomed").drain()
    finally:
        await deps.http.aclose()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
