"""Streams that end badly: a hung upstream, and a client that goes away mid-stream."""

from __future__ import annotations

import socket
import time

import openai
import orjson
from harness import GatewayUnderTest

from fleetplane.sim.process import SimProcess


def test_a_hung_upstream_stream_is_cut_with_an_error_event(gateway: GatewayUnderTest) -> None:
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0)
    pieces: list[str] = []
    try:
        for chunk in client.chat.completions.create(
            model="solo",
            messages=[{"role": "user", "content": "hang [[sim output_tokens=40 hang_after=3]]"}],
            stream=True,
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
        raise AssertionError("the stream should end with an error")
    except openai.APIError as error:
        assert str(error) == "sim/sim-small: the upstream stream stalled (nothing for 2s)"
    [record] = gateway.usage(at_least=1)
    assert record.usage_source == "counted"
    assert record.output_tokens == len("".join(pieces).split()) == 3


def _raw_stream_request(gateway: GatewayUnderTest, body: dict[str, object]) -> socket.socket:
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    payload = orjson.dumps(body)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {gateway.keys['full']}\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


def _wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_client_disconnect_closes_the_upstream_stream_and_records_partial_usage(
    gateway: GatewayUnderTest, sim: SimProcess
) -> None:
    sock = _raw_stream_request(
        gateway,
        {
            "model": "solo",
            "stream": True,
            "messages": [{"role": "user", "content": "long [[sim output_tokens=400 tps=40]]"}],
        },
    )
    received = b""
    while received.count(b"data: ") < 6:
        received += sock.recv(65536)
    sock.close()

    def cancelled() -> bool:
        streams = sim.stats()["models"]["sim-small"]["streams"]
        return bool(streams["cancelled"] == 1)

    _wait_for(cancelled)
    streams = sim.stats()["models"]["sim-small"]["streams"]
    assert streams == {"started": 1, "completed": 0, "cancelled": 1, "hung": 0, "open": 0, "truncated": 0}
    [record] = gateway.usage(at_least=1)
    assert record.client_disconnected is True
    assert record.status == 499
    assert record.usage_source == "counted"
    assert 5 <= record.output_tokens < 400
    assert record.input_tokens > 0
    assert record.cost_usd > 0


def test_a_client_disconnect_before_the_first_token_cancels_the_upstream_call(
    gateway: GatewayUnderTest, sim: SimProcess
) -> None:
    sock = _raw_stream_request(
        gateway,
        {
            "model": "solo",
            "stream": True,
            "messages": [{"role": "user", "content": "slow start [[sim output_tokens=10 ttft_ms=5000]]"}],
        },
    )
    _wait_for(lambda: sim.stats()["models"].get("sim-small", {}).get("streams", {}).get("started", 0) == 1)
    sock.close()
    _wait_for(lambda: sim.stats()["models"]["sim-small"]["streams"]["cancelled"] == 1)
    [record] = gateway.usage(at_least=1)
    assert record.client_disconnected is True
    assert record.output_tokens == 0
