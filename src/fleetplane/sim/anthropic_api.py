"""The Anthropic surface: `/v1/messages` (plain and streamed), `/v1/messages/count_tokens`, and
`/v1/models` in Anthropic's shape.

Validation messages follow the real API's `field: problem` style; rendering lives in `anthropic_render`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from fleetplane.sim.anthropic_render import AnthropicDialect
from fleetplane.sim.asgi import Request, send_json
from fleetplane.sim.completion import ChatRequest, ToolMode, ToolSpec
from fleetplane.sim.config import ModelConfig
from fleetplane.sim.directives import DirectiveError, Directives, last_user_text, parse
from fleetplane.sim.engine import Header, SimState, send_error, serve_chat
from fleetplane.sim.errors import SimError, invalid
from fleetplane.telemetry.tokens import count_anthropic_messages

# A fixed creation date keeps the model list reproducible.
CREATED_AT = "2025-01-01T00:00:00Z"


def not_found(name: str) -> SimError:
    return SimError(404, "not_found", f"model: {name}")


def _required(body: Mapping[str, Any], *fields: str) -> None:
    for name in fields:
        if name not in body:
            raise invalid(f"{name}: Field required")


def _served(state: SimState, name: Any) -> tuple[str, ModelConfig]:
    if not isinstance(name, str):
        raise invalid("model: Input should be a valid string")
    model = state.config.models.get(name)
    if model is None:
        raise not_found(name)
    if model.kind != "chat":
        raise invalid(f"model: {name} is an embeddings model and does not support messages")
    return name, model


def _check_messages(messages: Any) -> list[Mapping[str, Any]]:
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise invalid(f"messages.{i}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise invalid(f"messages.{i}.content: Field required")
    return messages


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if isinstance(system, list) and all(isinstance(b, Mapping) and b.get("type") == "text" for b in system):
        return
    raise invalid("system: Input should be a valid string or a list of text blocks")


def parse_messages(state: SimState, body: Any) -> ChatRequest:
    if not isinstance(body, Mapping):
        raise invalid("body: Input should be a valid dictionary")
    _required(body, "model", "messages", "max_tokens")
    name, model = _served(state, body["model"])
    messages = _check_messages(body["messages"])
    cap = body["max_tokens"]
    if isinstance(cap, bool) or not isinstance(cap, int):
        raise invalid("max_tokens: Input should be a valid integer")
    if cap < 1:
        raise invalid("max_tokens: Input should be greater than or equal to 1")
    _check_system(body.get("system"))
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise invalid("stream: Input should be a valid boolean")
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid("stop_sequences: Input should be a valid list of strings")
    tools, mode, forced = _tools(body)
    try:
        directives = parse(last_user_text(messages))
    except DirectiveError as exc:
        raise invalid(f"messages: {exc}") from None
    _check_directive_tool(directives, tools)
    input_tokens = count_anthropic_messages(body)
    if input_tokens > model.context_window:
        raise invalid(f"prompt is too long: {input_tokens} tokens > {model.context_window} maximum")
    last = messages[-1]
    content = last.get("content")
    after_tool_result = (
        last.get("role") == "user"
        and isinstance(content, list)
        and any(isinstance(b, Mapping) and b.get("type") == "tool_result" for b in content)
    )
    return ChatRequest(
        name=name,
        model=model,
        body=body,
        input_tokens=input_tokens,
        stream=stream,
        max_tokens=cap,
        stops=list(stops),
        tools=tools,
        tool_mode=mode,
        tool_name=forced,
        after_tool_result=after_tool_result,
        directives=directives,
    )


def _tools(body: Mapping[str, Any]) -> tuple[list[ToolSpec], ToolMode, str | None]:
    raw = body.get("tools")
    tools: list[ToolSpec] = []
    if raw is not None:
        if not isinstance(raw, list):
            raise invalid("tools: Input should be a valid list")
        for i, tool in enumerate(raw):
            if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
                raise invalid(f"tools.{i}.name: Field required")
            if tool.get("type") not in (None, "custom"):
                # Server tools (web search, code execution) run at the provider: never called here.
                continue
            schema = tool.get("input_schema")
            if not isinstance(schema, Mapping):
                raise invalid(f"tools.{i}.input_schema: Field required")
            tools.append(ToolSpec(tool["name"], schema))
    choice = body.get("tool_choice")
    if choice is None:
        return tools, "auto", None
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if kind == "auto" or kind == "none":
        return tools, kind, None
    if not tools:
        raise invalid("tool_choice: may only be specified while providing tools")
    if kind == "any":
        return tools, "required", None
    name = choice.get("name")
    if name not in {tool.name for tool in tools}:
        raise invalid(f"tool_choice: tool {name!r} is not among the provided tools")
    return tools, "named", name


def _check_directive_tool(directives: Directives, tools: list[ToolSpec]) -> None:
    if directives.tool is not None and directives.tool not in {tool.name for tool in tools}:
        raise invalid(f"messages: sim directive tool={directives.tool} names no tool in the request's tools")


def _load(req: Request) -> tuple[Any, str | None]:
    try:
        body = orjson.loads(req.body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"There was an error parsing the body of your request: {exc}") from None
    model = body.get("model") if isinstance(body, Mapping) else None
    return body, model if isinstance(model, str) else None


async def messages(state: SimState, req: Request, base: list[Header], request_id: str) -> None:
    dialect = AnthropicDialect(request_id)
    model: str | None = None
    try:
        body, model = _load(req)
        chat = parse_messages(state, body)
    except SimError as err:
        await send_error(state, req, dialect, err, model=model, headers=base)
        return
    await serve_chat(state, req, dialect, chat, base)


async def count_tokens(state: SimState, req: Request, base: list[Header], request_id: str) -> None:
    model: str | None = None
    try:
        body, model = _load(req)
        if not isinstance(body, Mapping):
            raise invalid("body: Input should be a valid dictionary")
        _required(body, "model", "messages")
        _served(state, body["model"])
        _check_messages(body["messages"])
        _check_system(body.get("system"))
        _tools(body)
    except SimError as err:
        await send_error(state, req, AnthropicDialect(request_id), err, model=model, headers=base)
        return
    await send_json(req.send, 200, {"input_tokens": count_anthropic_messages(body)}, base)


def model_entry(name: str, model: ModelConfig) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": model.display_name or name, "created_at": CREATED_AT}


async def list_models(state: SimState, req: Request, base: list[Header]) -> None:
    data = [model_entry(name, m) for name, m in state.config.models.items() if m.kind == "chat"]
    payload = {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    await send_json(req.send, 200, payload, base)


async def get_model(state: SimState, req: Request, base: list[Header], request_id: str, name: str) -> None:
    model = state.config.models.get(name)
    if model is None or model.kind != "chat":
        await send_error(state, req, AnthropicDialect(request_id), not_found(name), headers=base)
        return
    await send_json(req.send, 200, model_entry(name, model), base)
