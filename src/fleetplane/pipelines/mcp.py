"""A minimal MCP client (Streamable HTTP, JSON responses or one SSE event) for the tools a pipeline's skills
call, with each tool pinned by the hash of its definition.

A pin is sha256 of the canonical JSON of {name, description, inputSchema}. Pins written in the pipeline
(`spec.mcp[].pins`) win; otherwise the first definition seen is pinned in the store (trust on first use).
A tool whose definition no longer hashes to its pin is refused (an MCP "rug pull"), and the refusal names
both hashes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from fleetplane.manifests.pipeline import McpServer
from fleetplane.pipelines.sql import insert_ignore
from fleetplane.store.db import Store
from fleetplane.store.tables import pipeline_tool_pins
from fleetplane.telemetry.propagation import inject_headers

PROTOCOL = "2025-06-18"


class McpError(Exception):
    """A tool that cannot be called: unreachable server, unknown tool, changed definition, tool error."""


def definition_hash(tool: dict[str, Any]) -> str:
    material = {k: tool.get(k) for k in ("name", "description", "inputSchema")}
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


class McpTools:
    def __init__(
        self, store: Store, pipeline: str, servers: list[McpServer], http: httpx.AsyncClient
    ) -> None:
        self._store, self._pipeline, self._http = store, pipeline, http
        self._servers = servers
        self._sessions: dict[str, str | None] = {}
        self._tools: dict[str, tuple[McpServer, dict[str, Any]]] | None = None

    async def call(self, name: str, arguments: dict[str, Any], *, now: float) -> dict[str, Any]:
        server, tool = await self._find(name, now=now)
        result = await self._rpc(server, "tools/call", {"name": tool["name"], "arguments": arguments})
        if result.get("isError"):
            raise McpError(f"tool {name} failed: {_text(result)}")
        structured = result.get("structuredContent")
        return structured if isinstance(structured, dict) else {"text": _text(result)}

    async def _find(self, name: str, *, now: float) -> tuple[McpServer, dict[str, Any]]:
        if self._tools is None:
            found: dict[str, tuple[McpServer, dict[str, Any]]] = {}
            for server in self._servers:
                listed = await self._rpc(server, "tools/list", {})
                for tool in listed.get("tools") or []:
                    found.setdefault(tool["name"], (server, tool))
                    found[f"{server.name}.{tool['name']}"] = (server, tool)
            self._tools = found
        if name not in self._tools:
            raise McpError(f"no MCP server of pipeline {self._pipeline} offers a tool named {name}")
        server, tool = self._tools[name]
        await self._check_pin(server, tool, now=now)
        return server, tool

    async def _check_pin(self, server: McpServer, tool: dict[str, Any], *, now: float) -> None:
        actual = definition_hash(tool)
        pinned = server.pins.get(tool["name"])
        if pinned is None:
            key = (
                pipeline_tool_pins.c.pipeline == self._pipeline,
                pipeline_tool_pins.c.server == server.name,
            )
            async with self._store.engine.begin() as conn:
                await insert_ignore(
                    conn,
                    pipeline_tool_pins,
                    {
                        "pipeline": self._pipeline,
                        "server": server.name,
                        "tool": tool["name"],
                        "hash": actual,
                        "pinned_at": now,
                    },
                )
                query = select(pipeline_tool_pins.c.hash).where(
                    *key, pipeline_tool_pins.c.tool == tool["name"]
                )
                pinned = (await conn.execute(query)).scalar_one()
        if pinned != actual:
            raise McpError(
                f"tool {server.name}.{tool['name']} changed since it was pinned: its definition hashes to "
                f"{actual}, the pin is {pinned}; review the change and update the pin"
            )

    async def _rpc(self, server: McpServer, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if server.name not in self._sessions:
            self._sessions[server.name] = None
            init = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "fleetplane"}}
            await self._rpc(server, "initialize", init)
            await self._post(server, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": inject_headers()}}
        response = await self._post(server, body)
        if method == "initialize":
            self._sessions[server.name] = response.headers.get("mcp-session-id")
        message = _message(response)
        if "error" in message:
            raise McpError(f"{server.name}: {method} failed: {message['error'].get('message')}")
        result = message.get("result")
        return result if isinstance(result, dict) else {}

    async def _post(self, server: McpServer, body: dict[str, Any]) -> httpx.Response:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        session = self._sessions.get(server.name)
        if session:
            headers["mcp-session-id"] = session
        headers.update(inject_headers())
        try:
            response = await self._http.post(server.url, content=orjson.dumps(body), headers=headers)
        except httpx.HTTPError as exc:
            raise McpError(f"MCP server {server.name} at {server.url} is unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise McpError(f"MCP server {server.name} answered {response.status_code}")
        return response


def _message(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        text = data[-1] if data else "{}"
    value = orjson.loads(text)
    return value if isinstance(value, dict) else {}


def _text(result: dict[str, Any]) -> str:
    return " ".join(c.get("text", "") for c in result.get("content") or [] if c.get("type") == "text")
