"""A client that leaves while its stream is being opened: whatever routing still made is given back."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
import orjson
import pytest
from harness import GatewayUnderTest

from fleetplane.gateway.respond import ClientGone, unless_disconnected
from fleetplane.gateway.router import Router
from fleetplane.sim.process import SimProcess


@pytest.mark.anyio
async def test_work_that_finishes_after_the_cancel_is_discarded() -> None:
    disconnected = asyncio.Event()
    discarded: list[str] = []

    async def receive() -> dict[str, str]:
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def stubborn() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return "an opened stream"  # finished anyway: a layer below swallowed the cancel
        return "never"

    async def discard(made: str) -> None:
        discarded.append(made)

    disconnected.set()
    with pytest.raises(ClientGone):
        await unless_disconnected(receive, stubborn(), discard)
    assert discarded == ["an opened stream"]


def _quota(limits: str) -> str:
    return (
        "apiVersion: fleetplane.dev/v1alpha1\nkind: Quota\nmetadata: {name: one-at-a-time}\n"
        f"spec:\n  target: {{team: support}}\n  limits: {limits}\n---\n"
    )


def test_a_stream_opened_after_its_client_left_keeps_no_reservation(
    make_gateway: Any, sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Router.route

    async def stubborn_route(self: Router, ctx: Any) -> Any:
        # Routing that does not stop when the client leaves: it opens the stream all the same, as when
        # the first event arrives in the same moment as the disconnect.
        task = asyncio.ensure_future(original(self, ctx))
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                continue

    monkeypatch.setattr(Router, "route", stubborn_route)
    gateway: GatewayUnderTest = make_gateway(extra=_quota("{concurrent: 1, tpm: 100000}"))
    host, port = gateway.url.removeprefix("http://").split(":")
    body = orjson.dumps(
        {
            "model": "solo",
            "stream": True,
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "late [[sim output_tokens=10 ttft_ms=800]]"}],
        }
    )
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {gateway.keys['full']}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        deadline = time.monotonic() + 10
        while sim.stats()["models"].get("sim-small", {}).get("streams", {}).get("started", 0) < 1:
            assert time.monotonic() < deadline, "the stream never started upstream"
            time.sleep(0.02)
    # The client is gone before the first token; routing still opens the stream when it arrives.
    [record] = gateway.usage(at_least=1)
    assert (record.status, record.client_disconnected) == (499, True)

    rows = httpx.get(gateway.url + "/admin/quotas", timeout=10).json()["quotas"]
    [limits] = [{lim["name"]: lim for lim in r["limits"]} for r in rows if r["rule"] == "Quota/one-at-a-time"]
    assert (limits["concurrent"]["used"], limits["tpm"]["reserved"]) == (0, 0)
    assert limits["tpm"]["used"] == record.input_tokens + record.output_tokens
    again = httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": "solo", "max_tokens": 20, "messages": [{"role": "user", "content": "next"}]},
        headers={"authorization": f"Bearer {gateway.keys['full']}"},
        timeout=30,
    )
    assert again.status_code == 200  # the one concurrent place came back
