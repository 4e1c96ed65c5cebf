"""The OpenAI surface: `/v1/chat/completions` (plain and streamed), `/v1/embeddings`, `/v1/models`.

Bodies are parsed once as plain JSON and only the fields that shape the reply are checked, with OpenAI's
error wording and codes; rendering lives in `openai_render`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from fleetplane.sim.asgi import Request, send_json
from fleetplane.sim.completion import ChatRequest, ToolMode, ToolSpec
from fleetplane.sim.config import ModelConfig
from fleetplane.sim.directives import NONE, DirectiveError, Directives, last_user_text, parse
from fleetplane.sim.embeddings import embed, to_base64, truncate
from fleetplane.sim.engine import Header, SimState, decide_fault, deliver, fault_error, send_error, serve_chat
from fleetplane.sim.errors import SimError, invalid
from fleetplane.sim.openai_render import OpenAIDialect
from fleetplane.telemetry.tokens import count_embedding_input, count_openai_chat

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Model lists carry a creation time; a fixed one keeps responses byte-for-byte reproducible.
CREATED = 1_700_000_000


def _type_name(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "an array"}
    return "null" if value is None else names.get(type(value), "an object")


def wrong_type(param: str, expected: str, value: Any) -> SimError:
    message = f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead."
    return invalid(message, param, "invalid_type")


def bad_value(param: str, message: str) -> SimError:
    return invalid(f"Invalid value for '{param}': {message}", param, "invalid_value")


def _int(body: Mapping[str, Any], key: str, low: int, high: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(key, "an integer", value)
    if value < low:
        raise invalid(
            f"Invalid '{key}': integer below minimum value. Expected a value >= {low}, but got {value} "
            "instead.",
            key,
            "integer_below_min_value",
        )
    if high is not None and value > high:
        raise invalid(
            f"Invalid '{key}': integer above maximum value. Expected a value <= {high}, but got {value} "
            "instead.",
            key,
            "integer_above_max_value",
        )
    return value


def model_not_found(name: str) -> SimError:
    message = f"The model `{name}` does not exist or you do not have access to it."
    return SimError(404, "not_found", message, code="model_not_found")


def served(state: SimState, name: Any, kind: str) -> tuple[str, ModelConfig]:
    if name is None:
        raise invalid("you must provide a model parameter")
    if not isinstance(name, str):
        raise wrong_type("model", "a string", name)
    model = state.config.models.get(name)
    if model is None:
        raise model_not_found(name)
    if model.kind != kind:
        what = "an embeddings model" if model.kind == "embedding" else "a chat model"
        raise invalid(f"The model `{name}` is {what} and cannot be used with this endpoint.", "model")
    return name, model


def parse_chat(state: SimState, body: Any) -> ChatRequest:
    if not isinstance(body, Mapping):
        raise invalid("The request body must be a JSON object.")
    if body.get("model") is None:
        raise invalid("you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise invalid("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    name, model = served(state, body["model"], "chat")
    if not isinstance(messages, list):
        raise wrong_type("messages", "an array", messages)
    if not messages:
        raise invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
            "array instead.",
            "messages",
            "empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise wrong_type(f"messages[{i}]", "an object", message)
        if message.get("role") not in _ROLES:
            raise bad_value(f"messages[{i}].role", f"expected one of {', '.join(sorted(_ROLES))}.")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise wrong_type("stream", "a boolean", stream)
    options = body.get("stream_options")
    if options is not None and not stream:
        raise invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
        )
    if options is not None and not isinstance(options, Mapping):
        raise wrong_type("stream_options", "an object", options)
    n = _int(body, "n", 1, 128) or 1
    cap = _int(body, "max_completion_tokens", 1)
    if cap is None:
        cap = _int(body, "max_tokens", 1)
    tools, mode, forced = _tools(body)
    directives = _directives(last_user_text(messages), tools)
    input_tokens = count_openai_chat(body)
    if input_tokens > model.context_window:
        raise invalid(
            f"This model's maximum context length is {model.context_window} tokens. However, your messages "
            f"resulted in {input_tokens} tokens. Please reduce the length of the messages.",
            "messages",
            "context_length_exceeded",
        )
    return ChatRequest(
        name=name,
        model=model,
        body=body,
        input_tokens=input_tokens,
        stream=stream,
        n=n,
        max_tokens=cap,
        stops=_stops(body.get("stop")),
        tools=tools,
        tool_mode=mode,
        tool_name=forced,
        after_tool_result=messages[-1].get("role") in ("tool", "function"),
        directives=directives,
    )


def _stops(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise wrong_type("stop", "a string or an array of strings", value)
    if len(value) > 4:
        raise invalid(
            f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with "
            f"length {len(value)} instead.",
            "stop",
            "array_above_max_length",
        )
    return list(value)


def _tools(body: Mapping[str, Any]) -> tuple[list[ToolSpec], ToolMode, str | None]:
    raw = body.get("tools")
    tools: list[ToolSpec] = []
    if raw is not None:
        if not isinstance(raw, list):
            raise wrong_type("tools", "an array", raw)
        for i, tool in enumerate(raw):
            function = tool.get("function") if isinstance(tool, Mapping) else None
            if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
                param = f"tools[{i}].function.name"
                raise invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
            parameters = function.get("parameters")
            tools.append(ToolSpec(function["name"], parameters if isinstance(parameters, Mapping) else {}))
    choice = body.get("tool_choice")
    if choice is None:
        return tools, "auto", None
    if not tools:
        raise bad_value("tool_choice", "'tool_choice' is only allowed when 'tools' are specified.")
    if choice == "auto" or choice == "none" or choice == "required":
        return tools, choice, None
    function = choice.get("function") if isinstance(choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise bad_value("tool_choice", "expected 'none', 'auto', 'required' or a named function.")
    if name not in {tool.name for tool in tools}:
        raise bad_value("tool_choice", f"no function named '{name}' was specified in the 'tools' parameter.")
    return tools, "named", name


def _directives(text: str, tools: list[ToolSpec]) -> Directives:
    try:
        directives = parse(text)
    except DirectiveError as exc:
        raise invalid(str(exc), "messages") from None
    if directives.tool is not None and directives.tool not in {tool.name for tool in tools}:
        raise invalid(
            f"sim directive tool={directives.tool} names no tool in the request's 'tools'.", "messages"
        )
    return directives


def _unparsable() -> SimError:
    return invalid(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
        "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
        "valid JSON.)"
    )


def _load(req: Request) -> tuple[Any, str | None]:
    """The parsed body and the model it names (for stats and headers); raises SimError on bad JSON."""
    try:
        body = orjson.loads(req.body)
    except orjson.JSONDecodeError:
        raise _unparsable() from None
    model = body.get("model") if isinstance(body, Mapping) else None
    return body, model if isinstance(model, str) else None


async def chat_completions(state: SimState, req: Request, base: list[Header]) -> None:
    model: str | None = None
    try:
        body, model = _load(req)
        chat = parse_chat(state, body)
    except SimError as err:
        await send_error(state, req, OpenAIDialect(state), err, model=model, headers=base)
        return
    include_usage = chat.stream and bool((body.get("stream_options") or {}).get("include_usage"))
    await serve_chat(state, req, OpenAIDialect(state, include_usage), chat, base)


def _embedding_inputs(value: Any) -> list[str]:
    """Each input as text: strings as they are, token arrays spelled out (their vectors need only differ)."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        items = [value]
    elif isinstance(value, list) and value:
        items = value
    else:
        raise invalid("'$.input' is invalid. An input must be a non-empty string or array.", "input")
    texts = []
    for item in items:
        if isinstance(item, str) and item:
            texts.append(item)
        elif isinstance(item, list) and item and all(isinstance(v, int) for v in item):
            texts.append(" ".join(str(v) for v in item))
        else:
            raise invalid(
                "'$.input' is invalid. Each input must be a non-empty string or token array.", "input"
            )
    if len(texts) > 2048:
        raise invalid("'$.input' is invalid. At most 2048 inputs are allowed per request.", "input")
    return texts


async def embeddings(state: SimState, req: Request, base: list[Header]) -> None:
    dialect = OpenAIDialect(state)
    model_name: str | None = None
    try:
        body, model_name = _load(req)
        if not isinstance(body, Mapping):
            raise invalid("The request body must be a JSON object.")
        if body.get("input") is None:
            raise invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter")
        name, model = served(state, body.get("model"), "embedding")
        texts = _embedding_inputs(body["input"])
        dimensions = _int(body, "dimensions", 1, model.dimensions) or model.dimensions
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise bad_value("encoding_format", "expected 'float' or 'base64'.")
        flagged = next((t for t in texts if "[[sim" in t), "")
        try:
            directives = parse(flagged) if flagged else NONE
        except DirectiveError as exc:
            raise invalid(str(exc), "input") from None
        input_tokens = count_embedding_input(body["input"])
        if input_tokens > model.context_window * len(texts):
            raise invalid(
                f"This model's maximum context length is {model.context_window} tokens.",
                "input",
                "context_length_exceeded",
            )
    except SimError as err:
        await send_error(state, req, dialect, err, model=model_name, headers=base)
        return
    action, extra_s = decide_fault(state, name, model, directives)
    failure = fault_error(dialect, action) if action is not None else None
    if failure is not None:
        await send_error(state, req, dialect, failure, model=name, headers=base)
        return
    limiter = state.limiters[name]
    denial = limiter.admit(input_tokens, 0)
    if denial is not None:
        await send_error(state, req, dialect, dialect.rate_limited(name, denial), model=name, headers=base)
        return
    stats = state.stats.model(name)
    stats.tokens_in += input_tokens
    data = []
    for index, text in enumerate(texts):
        vector = truncate(embed(state.seed, name, text, model.dimensions), dimensions)
        data.append(
            {
                "object": "embedding",
                "index": index,
                "embedding": to_base64(vector) if encoding == "base64" else vector,
            }
        )
    payload = {
        "object": "list",
        "data": data,
        "model": name,
        "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
    }
    ttft_s, _ = state.pace(model, directives, extra_s)
    fault = action.mode if action is not None else None
    await deliver(state, req, payload, [*base, *limiter.openai_headers()], stats, 0, ttft_s, fault)


def model_entry(name: str, model: ModelConfig) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": CREATED, "owned_by": model.owned_by}


async def list_models(state: SimState, req: Request, base: list[Header]) -> None:
    data = [model_entry(name, model) for name, model in state.config.models.items()]
    await send_json(req.send, 200, {"object": "list", "data": data}, base)


async def get_model(state: SimState, req: Request, base: list[Header], name: str) -> None:
    model = state.config.models.get(name)
    if model is None:
        await send_error(state, req, OpenAIDialect(state), model_not_found(name), headers=base)
        return
    await send_json(req.send, 200, model_entry(name, model), base)
