"""A gateway under test: a real server (uvicorn, real HTTP) in a background thread, a real store, and
the simulator as its own process as the upstream. Test modules import this by name (see conftest)."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from fleetplane.gateway.app import GatewayRuntime, GatewaySettings
from fleetplane.manifests.loader import load
from fleetplane.server import build_app
from fleetplane.store.db import Store
from fleetplane.store.desired import apply_desired
from fleetplane.store.usage import UsageRecord, UsageRepository
from fleetplane.telemetry.setup import Telemetry

# The sims used here: every chat model instant unless a request's directive says otherwise.
SIM_CONFIG: dict[str, Any] = {
    "seed": 11,
    "instant": True,
    "models": {
        "sim-large": {"output_tokens": {"mean": 30, "stddev": 5, "min": 5, "max": 60}},
        "sim-medium": {"output_tokens": {"mean": 30, "stddev": 5, "min": 5, "max": 60}},
        "sim-small": {"output_tokens": {"mean": 20, "stddev": 5, "min": 5, "max": 40}},
        "sim-claude": {"owned_by": "anthropic", "context_window": 200000},
        "sim-embed": {"kind": "embedding", "dimensions": 32},
    },
}

FLEET = """
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {name: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {name: support}
spec: {organization: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata: {name: sim}
spec: {type: sim, timeouts: {read: 2s}}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata: {name: sim-anthropic}
spec: {type: sim, sim: {api: anthropic}}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: chain}
spec:
  family: sim-gpt
  contextWindow: 128000
  price: {input: 2.0, output: 8.0}
  timeout: {chain_timeout}
  cooldown: 30s
  deployments:
    - {provider: sim, model: sim-large, timeout: 1s}
    - {provider: sim, model: sim-medium}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: solo}
spec:
  family: sim-gpt
  contextWindow: 32000
  price: {input: 1.0, output: 2.0}
  timeout: {solo_timeout}
  cooldown: 30s
  deployments: [{provider: sim, model: sim-small}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: claude}
spec:
  family: sim-claude
  contextWindow: 200000
  maxOutputTokens: 1024
  price: {input: 3.0, output: 15.0}
  deployments: [{provider: sim-anthropic, model: sim-claude}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: embed}
spec:
  type: embeddings
  family: sim-embed
  contextWindow: 8192
  price: {input: 0.1, output: 0}
  deployments: [{provider: sim, model: sim-embed}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: cached}
spec:
  family: sim-gpt
  contextWindow: 32000
  price: {input: 1.0, output: 2.0}
  cooldown: 30s
  deployments: [{provider: sim, model: sim-small}]
  cache: {mode: first, ttl: 1h}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: rescue}
spec:
  family: sim-gpt
  contextWindow: 32000
  price: {input: 1.0, output: 2.0}
  timeout: 2s
  cooldown: 30s
  deployments: [{provider: sim, model: sim-medium}]
  cache: {mode: last-resort, ttl: 1h}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: split}
spec:
  family: sim-gpt
  contextWindow: 32000
  price: {input: 1.0, output: 2.0}
  deployments:
    - {provider: sim, model: sim-large, step: 0, weight: 3}
    - {provider: sim, model: sim-medium, step: 0, weight: 1}
    - {provider: sim, model: sim-small, step: 1}
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: full}
spec: {team: support, agent: bot}
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: limited}
spec: {team: support, models: [solo]}
"""


def write_fleet(directory: Path, extra: str = "", **values: str) -> Path:
    text = FLEET + ("---\n" + textwrap.dedent(extra) if extra else "")
    for name, value in {"chain_timeout": "10s", "solo_timeout": "10s", **values}.items():
        text = text.replace("{" + name + "}", value)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fleet.yaml").write_text(textwrap.dedent(text))
    return directory


@dataclass
class GatewayUnderTest:
    url: str
    keys: dict[str, str]
    database_url: str
    server: uvicorn.Server
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def flush(self) -> None:
        httpx.post(self.url + "/admin/gateway/flush", timeout=10).raise_for_status()

    def usage(self, *, at_least: int = 0, timeout: float = 10.0) -> list[UsageRecord]:
        """Every usage record written so far, oldest first; waits until `at_least` exist (a stream's
        record is settled just after its last byte reached the client)."""
        deadline = time.monotonic() + timeout
        while True:
            records = self._read_usage()
            if len(records) >= at_least or time.monotonic() > deadline:
                return records
            time.sleep(0.05)

    def _read_usage(self) -> list[UsageRecord]:
        self.flush()

        async def read() -> list[UsageRecord]:
            store = await Store.open(self.database_url, run_migrations=False)
            try:
                from sqlalchemy import select

                from fleetplane.store.tables import usage_records

                async with store.engine.connect() as conn:
                    ids = (
                        await conn.execute(select(usage_records.c.request_id).order_by(usage_records.c.id))
                    ).all()
                repo = UsageRepository(store)
                return [r for (rid,) in ids if (r := await repo.get(rid)) is not None]
            finally:
                await store.close()

        return asyncio.run(read())

    def charged(self) -> tuple[int, int, Decimal]:
        records = self.usage()
        return (
            sum(r.input_tokens for r in records),
            sum(r.output_tokens for r in records),
            sum((r.cost_usd for r in records), Decimal(0)),
        )

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_gateway(
    fleet_dir: Path,
    database_url: str,
    sim_url: str,
    *,
    redis_url: str | None = None,
    max_body: int | None = None,
    telemetry: Telemetry | None = None,
) -> GatewayUnderTest:
    desired = load(fleet_dir)

    async def apply() -> dict[str, str]:
        store = await Store.open(database_url)
        try:
            result = await apply_desired(store, desired, now=0.0 + __import__("time").time())
            return {m.key: m.secret for m in result.minted}
        finally:
            await store.close()

    keys = asyncio.run(apply())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = GatewaySettings(
        redis_url=redis_url, sim_urls={"sim": sim_url, "sim-anthropic": sim_url}, config_poll=0.5
    )
    if max_body is not None:
        settings.max_body = max_body
    server_box: dict[str, uvicorn.Server] = {}
    ready = threading.Event()
    errors: list[BaseException] = []

    async def serve() -> None:
        store = await Store.open(database_url, run_migrations=False)
        try:
            runtime = GatewayRuntime(store, settings, telemetry=telemetry)
            config = uvicorn.Config(build_app(runtime), log_level="warning", access_log=False, lifespan="on")
            server = uvicorn.Server(config)
            server_box["server"] = server
            ready.set()
            await server.serve(sockets=[sock])
        finally:
            await store.close()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # surfaced by the fixture
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="gateway-under-test", daemon=True)
    thread.start()
    ready.wait(30)
    server = server_box.get("server")
    if server is None:
        raise RuntimeError(f"the gateway did not start: {errors}")
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if server.started:
            break
        if errors:
            raise RuntimeError(f"the gateway did not start: {errors}")
        threading.Event().wait(0.01)
    return GatewayUnderTest(
        url=url, keys=keys, database_url=database_url, server=server, thread=thread, errors=errors
    )
