"""A server with skills as agents' tools, in process: the gateway, the skill tools, a fleet of two
declarative agents with keys of their own, and the example skills published (imported by name)."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from fleetplane.gateway.app import GatewayRuntime, GatewaySettings
from fleetplane.manifests.loader import load
from fleetplane.server import build_app
from fleetplane.skills import SkillCatalog, SkillRegistry
from fleetplane.skilltools import SkillTools
from fleetplane.store.db import Store
from fleetplane.store.desired import apply_desired

EXAMPLES = Path(__file__).parents[2] / "examples" / "fleet" / "skills"

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
spec: {type: sim}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: solo}
spec:
  family: sim-gpt
  contextWindow: 32000
  price: {input: 1.0, output: 2.0}
  deployments: [{provider: sim, model: sim-small}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: Agent
metadata: {name: faq}
spec:
  team: support
  declarative:
    model: solo
    instructions: Answer briefly; use your tools.
    skills: ["summarize@^1", "send-refund@^2", missing-skill]
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: chat-small}
spec:
  family: sim-gpt
  contextWindow: 32000
  price: {input: 1.0, output: 2.0}
  deployments: [{provider: sim, model: sim-small}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: Agent
metadata: {name: triage}
spec:
  team: support
  declarative: {model: solo, instructions: Label tickets., skills: ["classify-ticket@^0.3"]}
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: triage-key}
spec: {team: support, agent: triage}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Agent
metadata: {name: other}
spec:
  team: support
  declarative: {model: solo, instructions: Answer briefly.}
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: faq-key}
spec: {team: support, agent: faq}
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: other-key}
spec: {team: support, agent: other}
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: person}
spec: {team: support}
"""


@dataclass
class Server:
    app: object
    keys: dict[str, str]  # VirtualKey name → secret
    store: Store
    runtime: GatewayRuntime
    tools: SkillTools
    home: Path  # the registry's

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://server")  # type: ignore[arg-type]


@asynccontextmanager
async def server(
    tmp_path: Path, database_url: str, sim_url: str | None = None, *, listen: bool = False
) -> AsyncIterator[Server]:
    """`listen`: also serve on a loopback port, which prompt skills call as their gateway."""
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    (fleet / "fleet.yaml").write_text(textwrap.dedent(FLEET))
    store = await Store.open(database_url)
    runtime: GatewayRuntime | None = None
    served: asyncio.Task[None] | None = None
    web: uvicorn.Server | None = None
    try:
        result = await apply_desired(store, load(fleet), now=time.time())
        home = tmp_path / "home"
        registry = SkillRegistry(store, home)
        for name in ("summarize", "send-refund", "classify-ticket"):
            await registry.publish(EXAMPLES / name, actor="test")
        runtime = GatewayRuntime(store, GatewaySettings(sim_urls={"sim": sim_url or "http://127.0.0.1:9"}))
        await runtime.start()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1" if listen else None
        tools = SkillTools(store, runtime.keys, SkillCatalog(store, home, trust=None), url)
        app = build_app(runtime, skill_tools=tools)
        if listen:  # lifespan off: the runtime is started and stopped here
            web = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
            served = asyncio.create_task(web.serve(sockets=[sock]))
            while not web.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
                await asyncio.sleep(0.01)
        else:
            sock.close()
        yield Server(app, {m.key: m.secret for m in result.minted}, store, runtime, tools, home)
    finally:
        if web is not None and served is not None:
            web.should_exit = True
            await served
        if runtime is not None:
            await runtime.stop()
        await store.close()
