"""The network bridge: from inside the sandbox the gateway (and only the gateway) is reachable at
127.0.0.1:<gateway port>; the host side swaps the placeholder key for the agent's virtual key, which
never enters the sandbox."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fleetplane.runtime.replica import PLACEHOLDER_KEY, ReplicaState

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bwrap_ok")]

VIRTUAL_KEY = "fp-vk-support-probe-5be1c0"


class FakeGateway:
    """Answers every request with what it received (method, path, credentials)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
        method, path, _ = request_line.split(" ")
        record = {"method": method, "path": path, "authorization": headers.get("authorization", "")}
        self.seen.append(record)
        body = json.dumps(record).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
        writer.write(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    fake = FakeGateway()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    yield fake
    server.close()


async def test_the_agent_reaches_the_gateway_with_its_virtual_key(
    supervisor: Any, make_spec: Any, http: Any, gateway: FakeGateway
) -> None:
    spec = make_spec(
        network="gateway", gateway_url=f"http://127.0.0.1:{gateway.port}", virtual_key=VIRTUAL_KEY
    )
    replica = await supervisor.start(spec)
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    answer = await http.get(replica, "/gateway")
    assert answer == {"method": "GET", "path": "/v1/models", "authorization": f"Bearer {VIRTUAL_KEY}"}
    env = await http.get(replica, "/env")
    assert env["OPENAI_API_KEY"] == PLACEHOLDER_KEY
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:4000/v1"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4000"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4000"
    assert not any(VIRTUAL_KEY in value for value in env.values())
    assert VIRTUAL_KEY not in repr(spec)
    # the gateway's own port is not reachable directly: only through the bridge
    direct = await http.get(replica, f"/connect?host=127.0.0.1&port={gateway.port}")
    assert direct["result"].startswith("refused")
    assert len(gateway.seen) == 1


async def test_network_none_has_no_gateway(
    supervisor: Any, make_spec: Any, http: Any, gateway: FakeGateway
) -> None:
    spec = make_spec(network="none", gateway_url=f"http://127.0.0.1:{gateway.port}", virtual_key=VIRTUAL_KEY)
    replica = await supervisor.start(spec)
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    env = await http.get(replica, "/env")
    assert "OPENAI_BASE_URL" not in env
    assert (await http.get(replica, "/connect?host=127.0.0.1&port=4000"))["result"].startswith("refused")
    assert gateway.seen == []


@pytest.fixture
async def echo_server() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"pong:" + await reader.read(64))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_an_allowlist_opens_exactly_its_destinations(
    supervisor: Any, make_spec: Any, http: Any, echo_server: int
) -> None:
    allowed = f"127.0.0.1:{echo_server}"
    replica = await supervisor.start(make_spec(network="allowlist", allow=(allowed,)))
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    env = await http.get(replica, "/env")
    assert env["HTTPS_PROXY"] == "http://127.0.0.1:3128"
    through = await http.get(replica, f"/tunnel?host=127.0.0.1&port={echo_server}")
    assert through["result"] == "HTTP/1.1 200 Connection established / pong:ping"
    refused = await http.get(replica, "/tunnel?host=127.0.0.1&port=5432")
    assert refused["result"] == "HTTP/1.1 403 Forbidden"
    # and nothing is reachable directly, allowlisted or not
    direct = await http.get(replica, f"/connect?host=127.0.0.1&port={echo_server}")
    assert direct["result"].startswith("refused")


@pytest.mark.usefixtures("cgroups_ok")
async def test_the_process_tier_gets_the_bridge_on_a_free_port(
    supervisor: Any, make_spec: Any, http: Any, gateway: FakeGateway
) -> None:
    spec = make_spec(
        (sys.executable, "probe_agent.py"),
        tier="process",
        network="gateway",
        gateway_url=f"http://127.0.0.1:{gateway.port}",
        virtual_key=VIRTUAL_KEY,
    )
    replica = await supervisor.start(spec)
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    env = await http.get(replica, "/env")
    bridge_port = int(env["OPENAI_BASE_URL"].split(":")[2].split("/")[0])
    assert bridge_port not in (4000, gateway.port)  # the host's network: a free port, not a fixed one
    answer = await http.get(replica, "/gateway")
    assert answer["authorization"] == f"Bearer {VIRTUAL_KEY}"
    assert VIRTUAL_KEY not in env.values()
