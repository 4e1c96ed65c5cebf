"""`POST /agents/{name}/invoke`: one invoke API for every agent, load-balanced over its ready replicas.

The request is checked once (the shape of docs/runtime.md, after A2A's `message/send`: a message with
parts, an optional task id), given a task id when it has none, and sent to the ready replica with the
fewest requests in flight, through the host-side unix socket that reaches the agent's port inside its
sandbox. With telemetry each invocation is an `invoke_agent` span (a child of the caller's `traceparent`,
or a new trace) and the agent gets that span as its parent, so the agent's model calls nest under it;
without, the caller's `traceparent` is passed on as it is (a new one made when there is none). The answer
says which replica and revision served it, and carries the trace.

Requests in flight are counted per replica (the autoscaler reads them). A request that finds no ready
replica waits for one for up to `wait` seconds — counted as in flight, so an agent scaled to zero wakes
up — then gets a 503. A replica that refuses the connection (it died a moment ago) is skipped and the
next one tried; nothing is retried once the request reached an agent.

`x-fleetplane-revision: N` pins a request to revision N's ready replicas — a new revision's surge replica
held by its rollout gate included, which takes no other traffic (how the gate evaluates it).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from opentelemetry.trace import set_span_in_context
from starlette.requests import Request
from starlette.responses import Response

from fleetplane.runtime.pool import AgentPool, Tracked
from fleetplane.telemetry.propagation import extract_headers, inject_headers
from fleetplane.telemetry.span_handle import GenAISpan
from fleetplane.telemetry.spans import GenAISpans

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
PART_KINDS = ("text", "data", "file")


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": {"type": kind, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


class InvalidInvoke(Exception):
    pass


def check_invoke(body: bytes) -> dict[str, Any]:
    """The request as a dict, or `InvalidInvoke` saying what is wrong and where."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInvoke(f"the body is not JSON (line {exc.lineno} column {exc.colno})") from None
    if not isinstance(request, dict):
        raise InvalidInvoke('the body must be a JSON object: {"message": {"role": "user", "parts": [...]}}')
    message = request.get("message")
    if not isinstance(message, dict):
        raise InvalidInvoke('"message" is missing or not an object: {"role": "user", "parts": [...]}')
    if message.get("role", "user") not in ("user", "agent"):
        raise InvalidInvoke(f'message.role {message.get("role")!r} is not "user" or "agent"')
    parts = message.get("parts")
    if not isinstance(parts, list) or not parts:
        raise InvalidInvoke('message.parts must be a non-empty list, e.g. [{"kind": "text", "text": "Hi"}]')
    for i, part in enumerate(parts):
        kind = part.get("kind") if isinstance(part, dict) else None
        if kind not in PART_KINDS:
            raise InvalidInvoke(f"message.parts[{i}].kind must be one of {', '.join(PART_KINDS)}")
        if kind == "text" and not isinstance(part.get("text"), str):
            raise InvalidInvoke(f"message.parts[{i}].text must be a string")
        if kind == "data" and not isinstance(part.get("data"), dict):
            raise InvalidInvoke(f"message.parts[{i}].data must be an object")
    task_id = request.get("taskId")
    if task_id is not None and (not isinstance(task_id, str) or not task_id):
        raise InvalidInvoke("taskId must be a non-empty string")
    return request


def traceparent(headers: Any) -> str:
    """The caller's traceparent when it is well-formed, else the start of a new trace."""
    given = (headers.get("traceparent") or "").strip().lower()
    if _TRACEPARENT.match(given) and given[3:35] != "0" * 32:
        return given
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


class Balancer:
    def __init__(
        self,
        pool: Callable[[str], AgentPool | None],
        wake: Callable[[], None],
        pools: Callable[[], list[AgentPool]] = list,
        *,
        wait: float = 10.0,
        timeout: float = 300.0,
        prune_above: int = 64,
        spans: GenAISpans | None = None,
    ) -> None:
        self._pool = pool
        self._pools = pools  # every agent's pool: which endpoints are still in use
        self._wake = wake
        self.wait = wait
        self.timeout = timeout
        self.prune_above = prune_above  # clients kept before those of gone replicas are closed
        self.spans = (
            spans  # with telemetry: an invoke_agent span per invocation, the agent's calls its children
        )
        self._clients: dict[str, httpx.AsyncClient] = {}

    async def _client(self, endpoint: str) -> httpx.AsyncClient:
        client = self._clients.get(endpoint)
        if client is None:
            await self._prune()
            transport = httpx.AsyncHTTPTransport(uds=endpoint)
            client = httpx.AsyncClient(transport=transport, base_url="http://agent", timeout=self.timeout)
            self._clients[endpoint] = client
        return client

    async def _prune(self) -> None:
        """Close the clients of replicas that are gone (each new replica has a socket of its own)."""
        if len(self._clients) < self.prune_above:
            return
        live = {t.replica.endpoint for pool in self._pools() for t in pool.replicas}
        for endpoint in [e for e in self._clients if e not in live]:
            await self._clients.pop(endpoint).aclose()

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def _ready(
        self, pool: AgentPool, exclude: frozenset[str], revision: int | None = None
    ) -> Tracked | None:
        """A ready replica, waiting up to `wait` seconds for one (counted as in flight meanwhile)."""
        chosen = pool.pick(exclude, revision)
        if chosen is not None:
            return chosen
        pool.waiting += 1
        self._wake()  # an agent scaled to zero starts a replica for this request
        try:
            async with asyncio.timeout(self.wait):
                while (chosen := pool.pick(exclude, revision)) is None:
                    pool.changed.clear()
                    await pool.changed.wait()
        except TimeoutError:
            return None
        finally:
            pool.waiting -= 1
        return chosen

    async def invoke(self, request: Request) -> Response:
        name = request.path_params["name"]
        pool = self._pool(name)
        if pool is None:
            return error(404, "not_found", f"no agent named {name!r} is applied")
        pinned = request.headers.get("x-fleetplane-revision")
        if pinned is not None and not (pinned.isdigit() and int(pinned) >= 1):
            return error(
                400, "invalid_request", f"x-fleetplane-revision {pinned!r} is not a revision number (>= 1)"
            )
        revision = int(pinned) if pinned is not None else None
        try:
            body = check_invoke(await request.body())
        except InvalidInvoke as exc:
            return error(400, "invalid_request", str(exc))
        body.setdefault("taskId", uuid.uuid4().hex)
        headers = {"content-type": "application/json"}
        span = None
        if self.spans is not None:
            parent = extract_headers(
                {k: v for k, v in request.headers.items() if k in ("traceparent", "tracestate")}
            )
            span = self.spans.invoke_agent_span(name, remote=True, agent_id=name, parent=parent)
            span.open(attach=False)  # the span ends when this request does, not with this task's context
            span.set("fleetplane.task.id", body["taskId"])
            inject_headers(headers, context=set_span_in_context(span.span))
        else:
            headers["traceparent"] = traceparent(request.headers)
            if request.headers.get("tracestate"):
                headers["tracestate"] = request.headers["tracestate"]
        try:
            answer = await self._send(name, pool, body, orjson.dumps(body), headers, span, revision)
        except BaseException as exc:
            if span is not None:
                span.close(error=exc)
            raise
        if span is not None:
            if answer.status_code >= 500:
                span.set_error(f"http_{answer.status_code}")
            span.close()
        return answer

    async def _send(
        self,
        name: str,
        pool: AgentPool,
        body: dict[str, Any],
        payload: bytes,
        headers: dict[str, str],
        span: GenAISpan | None,
        revision: int | None = None,
    ) -> Response:
        trace = headers["traceparent"]
        tried: frozenset[str] = frozenset()
        while True:
            replica = await self._ready(pool, tried, revision)
            if replica is None:
                return self._unavailable(pool, tried, revision)
            if span is not None:
                span.set("fleetplane.replica", replica.id)
                span.set("fleetplane.revision", replica.number)
            replica.begin()
            try:
                client = await self._client(replica.replica.endpoint)
                answer = await client.post("/invoke", content=payload, headers=headers)
            except (httpx.ConnectError, FileNotFoundError, ConnectionRefusedError):
                tried |= {replica.id}  # it died before it took the request: the next replica may
                continue
            except httpx.TimeoutException:
                return error(504, "timeout", f"agent {name!r} replica {replica.id} did not answer in time")
            except httpx.HTTPError as exc:
                return error(502, "agent_error", f"agent {name!r} replica {replica.id} failed: {exc}")
            finally:
                replica.end()
            return Response(
                answer.content,
                status_code=answer.status_code,
                media_type=answer.headers.get("content-type", "application/json"),
                headers={
                    "x-fleetplane-agent": name,
                    "x-fleetplane-replica": replica.id,
                    "x-fleetplane-revision": str(replica.number),
                    "x-fleetplane-task-id": body["taskId"],
                    "traceparent": trace,
                },
            )

    def _unavailable(self, pool: AgentPool, tried: frozenset[str], revision: int | None = None) -> Response:
        if revision is not None and not tried:
            message = f"agent {pool.name!r} has no ready replica of revision {revision} after {self.wait:g}s"
            return error(503, "unavailable", message, headers={"retry-after": "1"})
        if tried:
            refused = ", ".join(sorted(tried))
            message = f"agent {pool.name!r}: every ready replica refused the connection ({refused})"
        else:
            status = pool.status()
            message = f"agent {pool.name!r} has no ready replica after {self.wait:g}s ({status}"
            detail = pool.error or pool.rollout_message
            message += f": {detail})" if detail else ")"
        return error(503, "unavailable", message, headers={"retry-after": "1"})
