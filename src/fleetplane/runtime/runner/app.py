"""The runner's HTTP service: `GET /healthz` and `POST /invoke` (docs/runtime.md, after A2A's Task).

One invoke is a task: the instructions (as the system message, their version sent to the gateway as the
prompt version so traces and usage are split by it) and the user's text go to the model group; each
model call is a step. The runner stops at `max_steps` steps or when the tokens spent reach `max_tokens`
(each call may spend only what is left), and answers with the last reply as the task's artifact.

With `skills` in the spec, their tool definitions are fetched from the server at the start of each invoke
and sent as `tools` on every model call; each tool call the model makes is run through the server
(`tools.call`, an `execute_tool` span) and its answer appended as a `tool` message, within the same step
and token limits.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetplane.runtime.runner import tools
from fleetplane.runtime.runner.config import RunnerConfig
from fleetplane.telemetry.agent import configure as configure_telemetry
from fleetplane.telemetry.agent import shutdown as shutdown_telemetry
from fleetplane.telemetry.agent import spans as sdk_spans
from fleetplane.telemetry.propagation import extract_headers
from fleetplane.telemetry.spans import GenAISpans


def _json(value: object, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def _text(request: dict[str, Any]) -> str:
    parts = (request.get("message") or {}).get("parts") or []
    texts = [p["text"] for p in parts if isinstance(p, dict) and p.get("kind") == "text"]
    data = [
        orjson.dumps(p["data"]).decode() for p in parts if isinstance(p, dict) and p.get("kind") == "data"
    ]
    return "\n".join(texts + data)


def _task(task_id: str, state: str, *, text: str | None = None, metadata: dict[str, Any]) -> dict[str, Any]:
    task: dict[str, Any] = {"kind": "task", "id": task_id, "status": {"state": state}, "metadata": metadata}
    if text is not None and state == "completed":
        task["artifacts"] = [{"artifactId": f"{task_id}-answer", "parts": [{"kind": "text", "text": text}]}]
    elif text is not None:
        task["status"]["message"] = {"role": "agent", "parts": [{"kind": "text", "text": text}]}
    return task


def build_app(
    config: RunnerConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    spans: GenAISpans | None = None,
) -> Starlette:
    """`spans`: where tool-call spans go (default: the agent SDK's, configured at start when the sandbox
    names an OTLP endpoint and the agent has skills)."""
    client = httpx.AsyncClient(base_url=config.gateway_url, timeout=300, transport=transport)

    async def healthz(_: Request) -> Response:
        return _json(
            {"status": "ok", "agent": config.name, "instructionsVersion": config.instructions_version}
        )

    async def invoke(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _json({"error": {"type": "invalid_request", "message": "the body is not JSON"}}, 400)
        if not isinstance(body, dict):
            return _json({"error": {"type": "invalid_request", "message": "the body must be an object"}}, 400)
        task_id = str(body.get("taskId") or "task")
        text = _text(body)
        if not text:
            return _json(
                {"error": {"type": "invalid_request", "message": "the message has no text or data"}}, 400
            )
        headers = {
            "authorization": f"Bearer {config.api_key}",
            "x-fleetplane-prompt-name": config.name,
            "x-fleetplane-prompt-version": config.instructions_version,
        }
        for name in ("traceparent", "tracestate"):
            if request.headers.get(name):
                headers[name] = request.headers[name]
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": config.instructions},
            {"role": "user", "content": text},
        ]
        spent = steps = 0
        reply = ""
        metadata: dict[str, Any] = {"model": config.model, "instructionsVersion": config.instructions_version}
        toolbox: tools.Toolbox | None = None
        if config.skills:
            try:
                toolbox = await tools.fetch(client, headers, task_id)
            except (tools.ToolsUnavailable, httpx.HTTPError) as exc:
                text = f"the skills' tool definitions could not be fetched: {exc}"
                return _json(_task(task_id, "failed", text=text, metadata=metadata), 502)
        parent = extract_headers(request.headers)  # tool spans belong to the caller's trace
        while steps < config.max_steps and spent < config.max_tokens:
            steps += 1
            payload: dict[str, Any] = {
                "model": config.model,
                "messages": messages,
                "max_tokens": config.max_tokens - spent,
            }
            if toolbox is not None and toolbox.tools:
                payload["tools"] = toolbox.tools
            answer = await client.post("/chat/completions", json=payload, headers=headers)
            if answer.status_code != 200:
                metadata.update(steps=steps, tokens=spent, gatewayStatus=answer.status_code)
                detail = answer.text[:500]
                return _json(
                    _task(
                        task_id,
                        "failed",
                        text=f"the gateway answered {answer.status_code}: {detail}",
                        metadata=metadata,
                    ),
                    502,
                )
            completion = answer.json()
            usage = completion.get("usage") or {}
            spent += int(usage.get("total_tokens") or 0)
            choice = completion["choices"][0]
            reply = choice["message"].get("content") or ""
            calls = choice["message"].get("tool_calls") or []
            if calls and toolbox is not None:
                messages.append({"role": "assistant", "content": reply or None, "tool_calls": calls})
                for tool_call in calls:
                    tracer = spans or sdk_spans()
                    messages.append(await tools.call(client, headers, tracer, parent, tool_call, task_id))
                    toolbox.calls += 1
                continue  # the model reads the answers in its next step
            messages.append({"role": "assistant", "content": reply})
            if choice.get("finish_reason") != "length":
                break  # the model finished its answer: the task is done
            messages.append({"role": "user", "content": "Continue."})
        metadata.update(steps=steps, tokens=spent)
        if toolbox is not None:
            metadata["toolCalls"] = toolbox.calls
        return _json(_task(task_id, "completed", text=reply, metadata=metadata))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        traced = spans is None and bool(config.skills) and bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        if traced:  # the sandbox sends OTLP through the bridge to the server
            configure_telemetry(service_name=f"agent {config.name}")
        try:
            yield
        finally:
            await client.aclose()
            if traced:
                shutdown_telemetry()

    return Starlette(
        routes=[Route("/healthz", healthz, methods=["GET"]), Route("/invoke", invoke, methods=["POST"])],
        lifespan=lifespan,
    )
