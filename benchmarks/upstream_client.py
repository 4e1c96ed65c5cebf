"""Which async HTTP client the gateway uses upstream: aiohttp against httpx, side by side.

    .venv/bin/python benchmarks/upstream_client.py                  # 3 rounds of 3,000 requests each
    .venv/bin/python benchmarks/upstream_client.py --rounds 5 --requests 5000

An ASGI server in a subprocess (uvicorn, uvloop, httptools: how the simulator and the gateway serve)
answers two shapes the gateway relays: a ~1 KB chat-completion JSON body and a 100-event SSE stream. Each
client, on uvloop, sends the requests one after another over one kept-alive connection (latency without
queueing) and then with 32 in flight (what an event loop pays per request under load). CPU per request is
this process's CPU time, in which only the client runs; the server's is shown for context. Clients take
turns round by round so a drift of a noisy machine does not favour one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import uvloop
from common import command_line, cpu_seconds, machine, now_utc, source, spawn, stop, tail, write_result
from rich.console import Console
from rich.table import Table

from fleetplane.sim.load import percentile

SHAPES = ("json", "sse")
CLIENTS = ("aiohttp", "httpx")
CONCURRENCY = 32
REQUEST = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hello " * 150}]})
JSON_REPLY = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 180}}],
        "usage": {"prompt_tokens": 150, "completion_tokens": 180, "total_tokens": 330},
    }
)
SSE_EVENT = b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" word"}}]}\n\n'  # noqa: E501
SSE_EVENTS = 100


# -- the server (a subprocess) -----------------------------------------------------------------------


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST /json: one JSON body; POST /sse: SSE_EVENTS events, each its own write, then [DONE]."""
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the whole request body, as a real upstream does
        message = await receive()
        more = message.get("more_body", False)
    if scope["path"] == "/sse":
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(SSE_EVENTS):
            await send({"type": "http.response.body", "body": SSE_EVENT, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        return
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": JSON_REPLY})


def serve(port_file: Path) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port_file.write_text(str(sock.getsockname()[1]))
    config = uvicorn.Config(
        echo_app, loop="uvloop", http="httptools", log_level="warning", access_log=False, lifespan="off"
    )
    uvicorn.Server(config).run(sockets=[sock])


# -- the clients -------------------------------------------------------------------------------------

Send = Callable[[str], Awaitable[None]]


def aiohttp_sender(session: aiohttp.ClientSession) -> Send:
    async def send(url: str) -> None:
        async with session.post(url, data=REQUEST, headers={"content-type": "application/json"}) as r:
            if url.endswith("/sse"):
                async for _ in r.content.iter_any():
                    pass
            else:
                await r.read()
            assert r.status == 200

    return send


def httpx_sender(client: httpx.AsyncClient) -> Send:
    async def send(url: str) -> None:
        headers = {"content-type": "application/json"}
        async with client.stream("POST", url, content=REQUEST, headers=headers) as r:
            if url.endswith("/sse"):
                async for _ in r.aiter_raw():
                    pass
            else:
                await r.aread()
            assert r.status_code == 200

    return send


async def _measure(send: Send, url: str, requests: int, server_pid: int) -> dict[str, Any]:
    for _ in range(100):  # warm up: connections open, code paths hot
        await send(url)
    latencies: list[float] = []
    cpu0, server0 = time.process_time(), cpu_seconds(server_pid)
    for _ in range(requests):
        t = time.perf_counter()
        await send(url)
        latencies.append(time.perf_counter() - t)
    sequential_cpu = time.process_time() - cpu0
    sequential_server = cpu_seconds(server_pid) - server0
    latencies.sort()
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            queue.pop()
            await send(url)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    concurrent_cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "p50_us": percentile(latencies, 50) * 1e6,
        "p99_us": percentile(latencies, 99) * 1e6,
        "cpu_us_per_request": sequential_cpu / requests * 1e6,
        "server_cpu_us_per_request": sequential_server / requests * 1e6,
        "concurrent_cpu_us_per_request": concurrent_cpu / requests * 1e6,
        "concurrent_requests_per_s": requests / wall,
    }


async def run_client(name: str, base: str, shape: str, requests: int, server_pid: int) -> dict[str, Any]:
    url = f"{base}/{shape}"
    if name == "aiohttp":
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector) as session:
            return await _measure(aiohttp_sender(session), url, requests, server_pid)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100), trust_env=False) as client:
        return await _measure(httpx_sender(client), url, requests, server_pid)


# -- reporting ---------------------------------------------------------------------------------------

METRICS = (
    ("p50_us", "sequential p50 µs"),
    ("p99_us", "sequential p99 µs"),
    ("cpu_us_per_request", "client CPU µs/req"),
    ("concurrent_cpu_us_per_request", f"client CPU µs/req at {CONCURRENCY} in flight"),
    ("concurrent_requests_per_s", f"req/s at {CONCURRENCY} in flight"),
    ("server_cpu_us_per_request", "server CPU µs/req"),
)


def summarize(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for shape in SHAPES:
        for client in CLIENTS:
            runs = [r for r in rounds if r["shape"] == shape and r["client"] == client]
            if not runs:
                continue
            row: dict[str, Any] = {"shape": shape, "client": client}
            for key, _ in METRICS:
                values = sorted(r[key] for r in runs)
                row[key] = {"median": values[len(values) // 2], "min": values[0], "max": values[-1]}
            rows.append(row)
    return rows


def _cell(s: dict[str, float]) -> str:
    text = f"{s['median']:.0f}"
    return text + f" ({s['min']:.0f}..{s['max']:.0f})" if s["max"] > s["min"] else text


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    head = ["shape", "client", *(label for _, label in METRICS)]
    lines = [
        f"Run {data['date']} with `{data['command']}` on {m['cores']} cores ({m['cpu']}), "
        f"Python {m['python']}; median (min..max) of {data['settings']['rounds']} rounds of "
        f"{data['settings']['requests']} requests.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in data["summary"]:
        cells = [row["shape"], row["client"], *(_cell(row[key]) for key, _ in METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def print_table(data: dict[str, Any]) -> None:
    table = Table(
        "shape", "client", *(label for _, label in METRICS), title="Upstream client: aiohttp vs httpx"
    )
    for row in data["summary"]:
        table.add_row(row["shape"], row["client"], *(_cell(row[key]) for key, _ in METRICS))
    Console(width=200).print(table)


def _wait_listening(server: subprocess.Popen[bytes], port_file: Path, log: Path) -> int:
    """The port is written when bound, before uvicorn listens: connect until it accepts."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            port = int(port_file.read_text())
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port
        time.sleep(0.05)
    raise RuntimeError(f"the echo server did not start:\n{tail(log)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=3, help="rounds; each runs every client once (default 3)")
    p.add_argument("--requests", type=int, default=3000, help="requests per client, shape and round")
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the server subprocess's own mode
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    started = now_utc()
    data: dict[str, Any] = {
        "benchmark": "upstream_client",
        "date": started.isoformat(timespec="seconds"),
        "command": command_line(),
        "machine": machine(),
        "source": source(),
        "settings": {"rounds": args.rounds, "requests": args.requests, "concurrency": CONCURRENCY},
        "versions": {
            "aiohttp": aiohttp.__version__,
            "httpx": httpx.__version__,
            "uvloop": uvloop.__version__,
        },
        "rounds": [],
    }
    with tempfile.TemporaryDirectory(prefix="fleetplane-bench-client-") as tmp:
        port_file, log = Path(tmp) / "port", Path(tmp) / "server.log"
        server = spawn([sys.executable, __file__, "--serve", str(port_file)], env={}, log=log)
        try:
            base = f"http://127.0.0.1:{_wait_listening(server, port_file, log)}"
            for n in range(args.rounds):
                order = CLIENTS if n % 2 == 0 else CLIENTS[::-1]
                for shape in SHAPES:
                    for client in order:
                        out = uvloop.run(run_client(client, base, shape, args.requests, server.pid))
                        data["rounds"].append({"round": n + 1, "shape": shape, "client": client, **out})
                        print(
                            f"  round {n + 1} {shape:<4} {client:<7} p50 {out['p50_us']:.0f} µs, "
                            f"CPU {out['cpu_us_per_request']:.0f} µs/req",
                            flush=True,
                        )
        finally:
            stop(server)
    data["summary"] = summarize(data["rounds"])
    path = write_result("upstream_client", data, started)
    snippet = markdown(data)
    path.with_suffix(".md").write_text(snippet)
    print_table(data)
    print(f"\nJSON: {path}\n")
    print(snippet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
