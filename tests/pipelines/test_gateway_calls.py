"""Model calls of the pipeline itself — the LLM router and an LLM guardrail — through a real gateway over
HTTP, with the simulator as its upstream; each call is a `chat` span in the run's trace."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "gateway"))

from harness import SIM_CONFIG, GatewayUnderTest, start_gateway, write_fleet
from test_engine import run_to_end

from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.gateway import GatewayClient
from fleetplane.pipelines.reasoning import records
from fleetplane.sim.process import SimProcess
from fleetplane.telemetry.processors import InMemorySink
from fleetplane.telemetry.setup import Telemetry

pytestmark = pytest.mark.anyio

ROUTED = """
metadata: {name: routed}
spec:
  route:
    choices: {look: lookup@^1, echo: echo@*}
    llm: {model: solo, prompt: "Which skill fits {{ input.text }}? [[sim tool=choose]]"}
  execute:
    - {id: handle, skill: route, input: {text: "{{ input.text }}"}}
  validate:
    - name: judged
      llm: {model: solo, prompt: "Is this answer safe? {{ output }} [[sim tool=verdict]]"}
      onFail: block
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    base = tmp_path_factory.mktemp("gw")
    with SimProcess(SIM_CONFIG) as sim:
        made = start_gateway(write_fleet(base / "fleet"), f"sqlite:///{base / 'gw.db'}", sim.base_url)
        try:
            yield made
        finally:
            made.stop()


async def test_the_llm_router_and_an_llm_guardrail_go_through_the_gateway(
    deps: Deps, make_plan: Any, gateway: GatewayUnderTest
) -> None:
    sink = InMemorySink()
    telemetry = Telemetry.create("pipelines-gateway-test", span_sinks=(sink,), otlp=False)
    deps.spans = telemetry.spans
    deps.gateway = GatewayClient(gateway.v1, gateway.keys["full"], spans=telemetry.spans)
    try:
        ended = await run_to_end(deps, make_plan(ROUTED), {"text": "where is order 7"})
    finally:
        await deps.gateway.close()
    [route] = [r.data for r in await records(deps.store, ended.id) if r.kind == "route"]
    assert route["by"] == "llm" and route["choice"] in ("look", "echo") and route["model"] == "sim-small"
    assert route["skill"] == {"look": "lookup@^1", "echo": "echo@*"}[route["choice"]]
    [verdict] = [r.data for r in await records(deps.store, ended.id) if r.kind == "guardrail"]
    assert verdict["name"] == "judged" and isinstance(verdict["passed"], bool)
    if verdict["passed"]:
        assert ended.status == "succeeded"
    else:
        assert ended.status == "failed" and ended.error.startswith("guardrail judged blocked output: llm: ")
    used = await asyncio.to_thread(gateway.usage, at_least=2)
    assert len(used) == 2  # both calls were governed and charged by the gateway
    assert telemetry.force_flush()
    telemetry.shutdown()
    chats = [s for s in sink.spans if s.name == "chat solo"]
    assert len(chats) == 2 and {f"{s.context.trace_id:032x}" for s in chats} == {ended.trace_id}
