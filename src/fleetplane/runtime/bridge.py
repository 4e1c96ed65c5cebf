"""The host half of the network bridge: the only way out of a sandbox.

The forwarder inside the sandbox turns 127.0.0.1:<gateway port> into connections to `gateway.sock`;
here that socket is served by a small HTTP/1.1 proxy to the fleetplane server that swaps whatever key
the agent sent (the placeholder) for the agent's virtual key. So the agent's model calls are governed,
charged and traced under its own key, and the key itself never enters the sandbox. Every path is
forwarded to the same server, so the OTLP receiver (/v1/traces …) is reached the same way.

`exec_in` and `term` talk to the forwarder's control socket (exec probes, graceful stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path

import h11
import httpx

from fleetplane.runtime.forwarder import pipe  # the same byte pump the in-sandbox half uses

log = logging.getLogger("fleetplane.runtime.bridge")

# hop-by-hop headers (RFC 9110 §7.6.1) and the credentials the proxy replaces
_DROP_REQUEST = {
    b"authorization",
    b"x-api-key",
    b"host",
    b"connection",
    b"keep-alive",
    b"proxy-authorization",
    b"te",
    b"transfer-encoding",
    b"upgrade",
    b"content-length",
}
_DROP_RESPONSE = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length"}
_READ = 65536


class GatewayProxy:
    """Serves one replica's gateway.sock: every request goes to `upstream` with `key` as its credential."""

    def __init__(self, socket_path: Path, upstream: str, key: str | None, *, timeout: float = 300.0) -> None:
        self.socket_path = socket_path
        self.upstream = upstream.rstrip("/")
        self._key = key
        self._client = httpx.AsyncClient(timeout=timeout)
        self._server: asyncio.Server | None = None
        self.requests = 0

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._handle, str(self.socket_path))
        os.chmod(self.socket_path, 0o666)  # the sandbox user connects to it

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        await self._client.aclose()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def _headers(self, raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        headers = [(k, v) for k, v in raw if k.lower() not in _DROP_REQUEST]
        if self._key:
            headers.append((b"authorization", b"Bearer " + self._key.encode()))
            if any(k.lower() == b"x-api-key" for k, _ in raw):  # Anthropic-style clients
                headers.append((b"x-api-key", self._key.encode()))
        return headers

    async def _next(self, conn: h11.Connection, reader: asyncio.StreamReader) -> object:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(_READ))
                continue
            return event

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = await self._next(conn, reader)
                if not isinstance(event, h11.Request):
                    return
                body = bytearray()
                while isinstance(part := await self._next(conn, reader), h11.Data):
                    body += part.data
                await self._forward(conn, writer, event, bytes(body))
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, OSError) as exc:
            log.debug("gateway bridge connection ended: %s", exc)
        finally:
            writer.close()

    async def _forward(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request, body: bytes
    ) -> None:
        self.requests += 1
        url = self.upstream + request.target.decode("latin-1")
        upstream_request = self._client.build_request(
            request.method.decode(), url, headers=self._headers(list(request.headers)), content=body
        )
        try:
            response = await self._client.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            message = json.dumps({"error": {"message": f"fleetplane gateway unreachable: {exc}"}}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(message)).encode()),
            ]
            writer.write(conn.send(h11.Response(status_code=502, headers=headers)) or b"")
            writer.write(conn.send(h11.Data(data=message)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            return
        try:
            headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _DROP_RESPONSE]
            if "content-length" in response.headers and "content-encoding" not in response.headers:
                headers.append((b"content-length", response.headers["content-length"].encode()))
            writer.write(conn.send(h11.Response(status_code=response.status_code, headers=headers)) or b"")
            async for chunk in response.aiter_raw():
                writer.write(conn.send(h11.Data(data=chunk)) or b"")
                await writer.drain()
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
        finally:
            await response.aclose()


class EgressProxy:
    """Serves one replica's egress.sock (network "allowlist"): HTTP CONNECT to an allowlisted host:port
    is tunnelled; anything else is answered 403 and never leaves the host."""

    def __init__(self, socket_path: Path, allow: tuple[str, ...], *, connect_timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self.allow = {entry.lower() for entry in allow}
        self._timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self.refused: list[str] = []

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._handle, str(self.socket_path))
        os.chmod(self.socket_path, 0o666)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: str, why: str) -> None:
        body = why.encode()
        writer.write(
            f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        )
        writer.write(body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._timeout)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        target = rest.split(" ", 1)[0].lower()
        if method != "CONNECT":
            await self._answer(writer, "403 Forbidden", "only CONNECT (https) leaves the sandbox\n")
            return
        if target not in self.allow:
            self.refused.append(target)
            await self._answer(writer, "403 Forbidden", f"{target} is not in this agent's allowlist\n")
            return
        host, _, port = target.rpartition(":")
        try:
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), self._timeout
            )
        except (OSError, TimeoutError) as exc:
            await self._answer(writer, "502 Bad Gateway", f"{target}: {exc}\n")
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        for w in (writer, up_w):
            w.close()


async def control(socket_path: Path, request: dict[str, object], timeout: float) -> dict[str, object]:
    """One request to the forwarder's control socket (one JSON line each way)."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(socket_path)), timeout)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    reply = json.loads(line or b"{}")
    if not isinstance(reply, dict):
        raise ValueError("the forwarder answered something other than an object")
    return reply


async def exec_in(socket_path: Path, argv: tuple[str, ...], timeout: float) -> tuple[int | None, str]:
    """Run `argv` inside the sandbox (an exec probe): its exit code (None on timeout) and output tail."""
    reply = await control(socket_path, {"op": "exec", "argv": list(argv), "timeout": timeout}, timeout + 2)
    if "error" in reply:
        return None, str(reply["error"])
    code = reply.get("code")
    return (int(code) if isinstance(code, int) else None), str(reply.get("output", ""))


async def term(socket_path: Path, timeout: float = 2.0) -> bool:
    """Ask the forwarder to SIGTERM the agent; False when it could not be reached."""
    try:
        await control(socket_path, {"op": "term"}, timeout)
    except (OSError, TimeoutError, ValueError):
        return False
    return True
