"""The in-sandbox half of the network bridge, and the agent's parent inside the sandbox.

Runs inside every sandbox (any tier) with the standard library only — it is started by path with
`python3 -I -S`, so it needs nothing from fleetplane or the venv. It:

- listens on 127.0.0.1:<gateway port> (network "gateway") and forwards each connection to the
  bind-mounted unix socket `gateway.sock`, whose host side is the proxy that adds the virtual key;
- listens on the unix socket `agent.sock` (visible on the host: the replica's `endpoint`) and forwards
  each connection to 127.0.0.1:<agent port>, where the agent serves HTTP;
- with network "allowlist", listens on 127.0.0.1:<proxy port> as an HTTP CONNECT proxy (HTTPS_PROXY)
  forwarding to `egress.sock`, whose host side connects only to allowlisted host:port destinations;
- listens on `control.sock` for the supervisor: `exec` (an exec probe, run here, inside the sandbox,
  with the agent's restrictions), `http` (an http probe on another port of the agent) and `term`
  (SIGTERM the agent: a graceful stop in every tier);
- starts the agent with the bridge URLs and a placeholder key in its environment, waits for it, and
  records how it ended in `exit.json` (the code, or the signal that killed it).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Handler = Callable[[Reader, Writer], Awaitable[None]]
PLACEHOLDER_KEY = "sk-fleetplane-bridge"
_CHUNK = 65536


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def _splice(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, connect: object) -> None:
    try:
        up_r, up_w = await connect()  # type: ignore[operator]
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))
    for w in (client_w, up_w):
        w.close()


def _connection(
    handler: Callable[[Reader, Writer], Awaitable[None]],
) -> Callable[[Reader, Writer], Awaitable[None]]:
    """A connection handler that ends quietly when cancelled. When the agent exits, `asyncio.run`
    cancels every open connection (an idle keep-alive through agent.sock, say), and the streams
    module's done-callback calls `task.exception()` on the cancelled task, which prints a
    CancelledError traceback to stderr — into the replica's log. A stop is not an error."""

    async def handle(reader: Reader, writer: Writer) -> None:
        try:
            await handler(reader, writer)
        except asyncio.CancelledError:
            writer.close()

    return handle


_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    """The agent dies with the forwarder (which dies with the supervisor): no agent outlives its watch."""
    _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _alive(pid: int) -> bool:
    """Not yet a zombie: the loop may not have reaped a child that already died."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def _http_status(port: int, path: str, timeout: float) -> dict[str, object]:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(f"GET {path} HTTP/1.0\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        writer.close()
        return {"status": int(line.split()[1])}
    except (TimeoutError, OSError, ValueError, IndexError) as exc:
        return {"status": None, "output": type(exc).__name__}


def _write_status(path: str, status: dict[str, int]) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(status, f)
    os.replace(path + ".tmp", path)


class Forwarder:
    def __init__(self, config: dict[str, object], argv: list[str]) -> None:
        self.run_dir = str(config["run_dir"])
        self.agent_port = int(config.get("agent_port", 8080))  # type: ignore[call-overload]
        self.gateway_port = int(config.get("gateway_port", 4000))  # type: ignore[call-overload]
        self.gateway = bool(config.get("gateway", True))
        self.proxy_port = config.get("proxy_port")  # network "allowlist": the egress proxy's port
        self.argv = argv
        self.child: asyncio.subprocess.Process | None = None
        self.termed = False  # the supervisor asked for the stop (vs. the agent ending on its own)
        self.env = dict(os.environ)

    def _path(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    async def _serve_gateway(self) -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await _splice(r, w, lambda: asyncio.open_unix_connection(self._path("gateway.sock")))

        server = await asyncio.start_server(_connection(handle), "127.0.0.1", self.gateway_port)
        self.gateway_port = server.sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{self.gateway_port}"
        self.env.update(
            OPENAI_BASE_URL=f"{base}/v1",
            ANTHROPIC_BASE_URL=base,
            FLEETPLANE_GATEWAY_URL=base,
            OTEL_EXPORTER_OTLP_ENDPOINT=base,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OPENAI_API_KEY=PLACEHOLDER_KEY,
            ANTHROPIC_API_KEY=PLACEHOLDER_KEY,
        )

    async def _serve_egress(self, port: int) -> None:
        """The allowlist's way out: an HTTP CONNECT proxy whose host side decides each destination."""

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await _splice(r, w, lambda: asyncio.open_unix_connection(self._path("egress.sock")))

        server = await asyncio.start_server(_connection(handle), "127.0.0.1", port)
        proxy = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self.env.update(HTTPS_PROXY=proxy, HTTP_PROXY=proxy, https_proxy=proxy, http_proxy=proxy)
        self.env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")

    async def _serve_agent(self) -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await _splice(r, w, lambda: asyncio.open_connection("127.0.0.1", self.agent_port))

        await asyncio.start_unix_server(_connection(handle), self._path("agent.sock"))

    async def _serve_control(self) -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                request = json.loads(await r.readline())
                reply = await self._control(request)
            except (ValueError, OSError) as exc:
                reply = {"error": str(exc)}
            w.write(json.dumps(reply).encode() + b"\n")
            await w.drain()
            w.close()

        await asyncio.start_unix_server(_connection(handle), self._path("control.sock"))

    async def _control(self, request: dict[str, object]) -> dict[str, object]:
        if request.get("op") == "term":
            # Asked before the agent is started (the control socket is bound first): remembered, so the
            # agent is never started, or is sent SIGTERM as soon as it exists.
            self.termed = True
            if self.child is not None and self.child.returncode is None and _alive(self.child.pid):
                self.child.send_signal(signal.SIGTERM)
            return {"ok": True}
        if request.get("op") == "exec":
            argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
            timeout = float(request.get("timeout", 2.0))  # type: ignore[arg-type]
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), timeout)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
                return {"code": None, "output": f"timed out after {timeout}s"}
            return {"code": proc.returncode, "output": out[-2048:].decode(errors="replace")}
        if request.get("op") == "http":  # an http probe on a port other than the agent's main one
            return await _http_status(
                int(request["port"]),  # type: ignore[call-overload]
                str(request.get("path", "/")),
                float(request.get("timeout", 2.0)),  # type: ignore[arg-type]
            )
        return {"error": f"unknown op {request.get('op')!r}"}

    async def run(self) -> int:
        if self.gateway:
            await self._serve_gateway()
        if self.proxy_port is not None:
            await self._serve_egress(int(self.proxy_port))  # type: ignore[call-overload]
        if self.agent_port == 0:  # the process tier shares the host network: a free port, not a fixed one
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.agent_port = s.getsockname()[1]
        self.env["PORT"] = str(self.agent_port)
        await self._serve_agent()
        await self._serve_control()
        if self.termed:  # stopped while starting: the agent never runs
            _write_status(self._path("exit.json"), {"signal": signal.SIGTERM, "termed": 1})
            return 128 + signal.SIGTERM
        self.child = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, preexec_fn=_die_with_parent
        )
        loop = asyncio.get_running_loop()
        child = self.child
        if self.termed:  # the stop came while the agent was being started
            child.send_signal(signal.SIGTERM)
        loop.add_signal_handler(signal.SIGTERM, lambda: child.send_signal(signal.SIGTERM))
        code = await child.wait()
        status = {"code": code} if code >= 0 else {"signal": -code}
        _write_status(self._path("exit.json"), {**status, "termed": int(self.termed)})
        return code if code >= 0 else 128 - code


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 3 or args[1] != "--":
        sys.stderr.write("usage: forwarder.py CONFIG_JSON -- ARGV...\n")
        sys.exit(2)
    forwarder = Forwarder(json.loads(args[0]), args[2:])
    try:
        code = asyncio.run(forwarder.run())
    except FileNotFoundError as exc:
        sys.stderr.write(f"fleetplane: cannot start {args[2]!r}: {exc.strerror}\n")
        code = 127
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
