"""An agent's whole trace, as a user would see it: the agent (its own process, the fleetplane telemetry
SDK, plain OTLP) calls the gateway with the openai SDK and runs a tool; the gateway's span joins the
agent's trace; the fleetplane server stores all of it; `fleetplane traces show` reads it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from fleet_procs import KEY, Replicas, write_fleet

from fleetplane.sim.process import SimProcess
from fleetplane.telemetry import semconv as sc

AGENT = textwrap.dedent(
    """
    import sys
    import openai
    from fleetplane.telemetry import agent_span, configure, shutdown, tool_span, trace_headers

    url, key, prompt = sys.argv[1], sys.argv[2], sys.argv[3]
    configure(service_name="support-agent", endpoint=url)
    with agent_span("support-bot"):
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        client.chat.completions.create(
            model="solo", messages=[{"role": "user", "content": prompt}], extra_headers=trace_headers()
        )
        with tool_span("get_weather"):
            pass
    print(shutdown())
    """
)


def run_agent(url: str, prompt: str, tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    subprocess.run([sys.executable, str(script), url, KEY, prompt], check=True, env=env, timeout=60)


def flatten(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for node in nodes for n in [node, *flatten(node["children"])]]


def stored_trace(home: Path, database_url: str, trace_id: str | None = None) -> dict[str, Any]:
    """The newest trace with three spans, through the CLI a user would run."""
    env = {**os.environ, "FLEETPLANE_HOME": str(home), "FLEETPLANE_DATABASE_URL": database_url}
    deadline = time.monotonic() + 20
    while True:
        listed = subprocess.run(
            [sys.executable, "-m", "fleetplane.cli", "traces", "list", "-o", "json"],
            capture_output=True, text=True, env=env, check=True,
        ).stdout  # fmt: skip
        traces = [t for t in json.loads(listed) if t["span_count"] >= 3]
        if traces:
            shown = subprocess.run(
                [sys.executable, "-m", "fleetplane.cli", "traces", "show", traces[0]["trace_id"], "-o",
                 "json"],
                capture_output=True, text=True, env=env, check=True,
            ).stdout  # fmt: skip
            return dict(json.loads(shown))
        assert time.monotonic() < deadline, f"no complete trace stored: {listed}"
        time.sleep(0.3)


def test_an_agent_trace_tree_with_the_gateway_span_inside(
    replicas: Replicas, upstream: SimProcess, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    replica = replicas.start(write_fleet(tmp_path / "fleet", upstream.base_url), database_url=database_url,
                             redis_url=None)  # fmt: skip
    prompt = "What is the weather in Lisbon? marker-7c1f"
    run_agent(replica.url, prompt, tmp_path)
    trace = stored_trace(tmp_path / "home0", database_url)
    spans = {span["name"]: span for span in flatten(trace["spans"])}
    assert set(spans) == {"invoke_agent support-bot", "chat solo", "execute_tool get_weather"}
    agent, chat, tool = (
        spans["invoke_agent support-bot"],
        spans["chat solo"],
        spans["execute_tool get_weather"],
    )
    # one trace, the right parents and kinds
    assert agent["parent_span_id"] is None
    assert chat["parent_span_id"] == agent["span_id"] and tool["parent_span_id"] == agent["span_id"]
    assert (agent["kind"], chat["kind"], tool["kind"]) == ("internal", "client", "internal")
    assert agent["resource"]["service.name"] == "support-agent"
    assert chat["resource"]["service.name"] == "fleetplane-gateway"
    # the conventions' required attributes, and the gateway's own
    assert agent["attributes"][sc.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert agent["attributes"][sc.GEN_AI_AGENT_NAME] == "support-bot"
    assert tool["attributes"][sc.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert tool["attributes"][sc.GEN_AI_TOOL_NAME] == "get_weather"
    attributes = chat["attributes"]
    assert attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "upstream"
    assert attributes[sc.GEN_AI_REQUEST_MODEL] == "solo"
    assert attributes[sc.GEN_AI_RESPONSE_MODEL] == "sim-small"
    assert attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0 and attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
    assert attributes[sc.FP_DEPLOYMENT] == "upstream/sim-small"
    assert attributes[sc.FP_TEAM] == "support" and attributes[sc.FP_KEY] == "full"
    assert attributes[sc.FP_COST_USD] > 0
    assert sc.GEN_AI_CONVERSATION_ID not in attributes  # never invented
    # rolled up to the root: what the chat cost is what the trace cost
    assert trace["total"]["input_tokens"] == attributes[sc.GEN_AI_USAGE_INPUT_TOKENS]
    # content capture is off by default: not a byte of the prompt anywhere the server stores
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("fleet.db*"))
    assert b"marker-7c1f" not in stored and b"Lisbon" not in stored
    assert "marker-7c1f" not in json.dumps(trace)


def test_captured_content_is_redacted(replicas: Replicas, upstream: SimProcess, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    replica = replicas.start(
        write_fleet(tmp_path / "fleet", upstream.base_url), database_url=database_url, redis_url=None,
        env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"},
    )  # fmt: skip
    secret = "sk-proj-" + "A1b2C3d4" * 6
    run_agent(replica.url, f"Mail alice.smith@example.com the key {secret} please", tmp_path)
    trace = stored_trace(tmp_path / "home0", database_url)
    events = [e for span in flatten(trace["spans"]) for e in span["log_events"]]
    dumped = json.dumps(trace)
    assert "alice.smith@example.com" not in dumped and secret not in dumped
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("fleet.db*"))
    assert b"alice.smith@example.com" not in stored and secret.encode() not in stored
    assert events, "with capture on, the gateway's content event is stored"
    captured = json.dumps(events)
    assert "Mail " in captured and "the key" in captured


class Collector:
    """Another OTLP endpoint (a second fleetplane receiver with its own store), as an external backend."""

    def __init__(self, tmp_path: Path) -> None:
        import asyncio
        import socket
        import threading

        import uvicorn
        from starlette.applications import Starlette

        from fleetplane.store.db import Store
        from fleetplane.telemetry.receiver import Receiver

        self.database_url = f"sqlite:///{tmp_path / 'collector.db'}"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server: uvicorn.Server | None = None
        ready = threading.Event()

        async def serve() -> None:
            store = await Store.open(self.database_url)
            receiver = Receiver.from_env(store, {})
            await receiver.start()
            app = Starlette(routes=receiver.routes())
            self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
            ready.set()
            try:
                await self.server.serve(sockets=[sock])
            finally:
                await receiver.stop()
                await store.close()

        self.thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        self.thread.start()
        ready.wait(20)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(15)


def test_the_same_trace_reaches_an_external_otlp_endpoint(
    replicas: Replicas, upstream: SimProcess, tmp_path: Path
) -> None:
    collector = Collector(tmp_path)
    try:
        database_url = f"sqlite:///{tmp_path / 'fleet.db'}"
        replica = replicas.start(
            write_fleet(tmp_path / "fleet", upstream.base_url), database_url=database_url, redis_url=None,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url},
        )  # fmt: skip
        run_agent(replica.url, "forward me", tmp_path)
        here = stored_trace(tmp_path / "home0", database_url)
        there = stored_trace(tmp_path / "collector-home", collector.database_url)
        assert here["trace_id"] == there["trace_id"]
        names = sorted(span["name"] for span in flatten(there["spans"]))
        assert names == ["chat solo", "execute_tool get_weather", "invoke_agent support-bot"]
    finally:
        collector.stop()
