"""An OpenAI Chat Completions request body, rewritten for an Anthropic Messages deployment."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from fleetplane.gateway.translate.media import anthropic_document, anthropic_image
from fleetplane.gateway.translate.shared import (
    Body,
    Translated,
    TranslationError,
    check_depth,
    shown,
)

_TOOL_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
# Anthropic tool ids must match this; OpenAI-compatible servers are looser. The same rewrite applies to a
# call and to its result, so the pair still matches.
_TOOL_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
# Read by the translation below rather than key by key.
_STRUCTURAL = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
    }
)


def openai_request_to_anthropic(body: Mapping[str, Any], *, default_max_tokens: int) -> Translated:
    """Any JSON body either translates or raises `TranslationError` naming the field (with its index path)
    and what it should have been: nothing else escapes, whatever the client sent."""
    if not isinstance(body, Mapping):
        raise TranslationError("the request body must be a JSON object", "body")
    check_depth(body)
    out = Translated({})
    result = out.body
    if "model" in body:
        result["model"] = body["model"]
    system, messages = _messages(body.get("messages"), out)
    if system:
        result["system"] = system
    result["messages"] = messages
    result["max_tokens"] = _max_tokens(body, default_max_tokens)
    for key, value in body.items():
        if value is None or key in _STRUCTURAL:
            continue
        handler = _PARAMS.get(key)
        if handler is None:
            out.drop(key)
        else:
            handler(value, out)
    _tools(body, out)
    return out


def _max_tokens(body: Mapping[str, Any], default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TranslationError(f"{key} must be a positive integer", key)
            return value
    return default


def _copy(name: str) -> Callable[[Any, Translated], None]:
    def handler(value: Any, out: Translated) -> None:
        out.body[name] = value

    return handler


def _ignore(value: Any, out: Translated) -> None:
    """Consumed by the gateway itself: stream usage is always reported to the client when asked for."""


def _always(value: Any) -> bool:
    return True


def _refuse_if(test: Callable[[Any], bool], param: str, message: str) -> Callable[[Any, Translated], None]:
    def handler(value: Any, out: Translated) -> None:
        if test(value):
            raise TranslationError(message, param)

    return handler


def _temperature(value: Any, out: Translated) -> None:
    # OpenAI's range is 0..2, Anthropic's 0..1: clamp, and say so, since the sampling differs from what
    # was asked for.
    if isinstance(value, int | float) and not 0 <= value <= 1:
        value = min(max(value, 0), 1)
        out.drop("temperature")
    out.body["temperature"] = value


def _stop(value: Any, out: Translated) -> None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TranslationError("stop must be a string or a list of strings", "stop")
    out.body["stop_sequences"] = value


def _user(value: Any, out: Translated) -> None:
    out.body["metadata"] = {"user_id": value}


def _stream(value: Any, out: Translated) -> None:
    out.body["stream"] = bool(value)


def _response_format(value: Any, out: Translated) -> None:
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "text":
        return
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise TranslationError(
                "response_format json_schema needs a schema", "response_format.json_schema"
            )
        out.body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        return
    raise TranslationError(
        f"response_format {shown(kind)} is not supported by Anthropic deployments; use json_schema",
        "response_format",
    )


def _unsupported(what: str) -> str:
    return f"{what} is not supported by Anthropic deployments"


_PARAMS: dict[str, Callable[[Any, Translated], None]] = {
    "stream": _stream,
    "stream_options": _ignore,
    "temperature": _temperature,
    "top_p": _copy("top_p"),
    "top_k": _copy("top_k"),
    "stop": _stop,
    "user": _user,
    "response_format": _response_format,
    "n": _refuse_if(lambda v: v != 1, "n", _unsupported("n other than 1")),
    "logprobs": _refuse_if(bool, "logprobs", _unsupported("logprobs")),
    "top_logprobs": _refuse_if(bool, "top_logprobs", _unsupported("top_logprobs")),
    "audio": _refuse_if(_always, "audio", _unsupported("audio output")),
    "modalities": _refuse_if(
        lambda v: isinstance(v, list) and "audio" in v, "modalities", _unsupported("audio output")
    ),
    "web_search_options": _refuse_if(_always, "web_search_options", _unsupported("web search")),
    "functions": _refuse_if(_always, "functions", "functions is deprecated and not translated; use tools"),
    "function_call": _refuse_if(
        _always, "function_call", "function_call is deprecated and not translated; use tool_choice"
    ),
}


def _tools(body: Mapping[str, Any], out: Translated) -> None:
    tools = body.get("tools")
    if tools is None or tools == []:
        # Without tools a tool_choice or parallel_tool_calls asks for nothing, so nothing is lost.
        return
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list", "tools")
    out.body["tools"] = [_tool(tool, i) for i, tool in enumerate(tools)]
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        out.body["tool_choice"] = choice


def _tool(tool: Any, i: int) -> Body:
    if not isinstance(tool, Mapping):
        raise TranslationError("a tool must be an object", f"tools[{i}]")
    kind = tool.get("type")
    if kind != "function":
        raise TranslationError(_unsupported(f"tool type {shown(kind)}"), f"tools[{i}].type")
    function = tool.get("function")
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise TranslationError("a function tool needs a name", f"tools[{i}].function.name")
    result: Body = {"name": function["name"]}
    if function.get("description") is not None:
        result["description"] = function["description"]
    result["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if function.get("strict"):
        result["strict"] = True
    return result


def _tool_choice(choice: Any) -> Body | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _TOOL_CHOICE:
        return dict(_TOOL_CHOICE[choice])
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return {"type": "tool", "name": function["name"]}
    raise TranslationError(_unsupported(f"tool_choice {shown(choice)}"), "tool_choice")


def _messages(messages: Any, out: Translated) -> tuple[str | list[Body] | None, list[Body]]:
    if not isinstance(messages, list):
        raise TranslationError("messages must be a list", "messages")
    system: list[tuple[Any, str]] = []
    turns: list[Body] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TranslationError("a message must be an object", f"messages[{i}]")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append((message.get("content"), f"messages[{i}]"))
        elif role == "user":
            _append(turns, "user", _user_content(message.get("content"), f"messages[{i}]", out))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_content(message, i))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message, i, out)])
        else:
            raise TranslationError(f"unknown role {shown(role)}", f"messages[{i}].role")
        if message.get("name") is not None:
            out.drop("name")
    return _system(system, out), turns


def _append(turns: list[Body], role: str, content: str | list[Body]) -> None:
    """Anthropic wants user and assistant turns to alternate, so a repeated role joins the previous turn."""
    if turns and turns[-1]["role"] == role:
        previous = turns[-1]["content"]
        turns[-1]["content"] = _as_blocks(previous) + _as_blocks(content)
    else:
        turns.append({"role": role, "content": content})


def _as_blocks(content: str | list[Body]) -> list[Body]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _system(parts: list[tuple[Any, str]], out: Translated) -> str | list[Body] | None:
    if len(parts) == 1 and isinstance(parts[0][0], str):
        return parts[0][0]
    blocks: list[Body] = []
    for content, param in parts:
        for j, block in enumerate(_as_blocks(_user_content(content, param, out))):
            if block["type"] != "text":
                raise TranslationError("system messages may only hold text", f"{param}.content[{j}].type")
            if block["text"]:
                blocks.append(block)
    return blocks or None


def _user_content(content: Any, param: str, out: Translated) -> str | list[Body]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError("content must be a string or a list of parts", f"{param}.content")
    return [_part(part, f"{param}.content[{j}]", out) for j, part in enumerate(content)]


def _part(part: Any, param: str, out: Translated) -> Body:
    if not isinstance(part, Mapping):
        raise TranslationError("a content part must be an object", param)
    kind = part.get("type")
    if kind == "text":
        block: Body = {"type": "text", "text": _string(part, "text", param)}
    elif kind == "image_url":
        image = part.get("image_url")
        if not isinstance(image, Mapping):
            image = {"url": image}
        block = anthropic_image(image.get("url"), f"{param}.image_url.url")
        # Anthropic picks the resolution itself; a requested detail level is not honoured.
        if image.get("detail") not in (None, "auto"):
            out.drop("detail")
    elif kind == "file":
        block = anthropic_document(part.get("file"), param)
    else:
        raise TranslationError(_unsupported(f"content part type {shown(kind)}"), f"{param}.type")
    # The prompt-caching marker some OpenAI clients already send for Anthropic models keeps working.
    if part.get("cache_control") is not None:
        block["cache_control"] = part["cache_control"]
    return block


def _string(part: Mapping[str, Any], key: str, param: str) -> str:
    """A text field of a part; absent reads as empty (the upstream says whether empty is allowed)."""
    value = part.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TranslationError(f"{key} must be a string", f"{param}.{key}")
    return value


def _assistant_content(message: Mapping[str, Any], i: int) -> str | list[Body]:
    for field in ("audio", "function_call"):
        if message.get(field) is not None:
            raise TranslationError(_unsupported(f"assistant {field}"), f"messages[{i}].{field}")
    content = message.get("content")
    tool_calls = message.get("tool_calls")
    if tool_calls is None:
        tool_calls = []
    if not isinstance(tool_calls, list):
        raise TranslationError("tool_calls must be a list", f"messages[{i}].tool_calls")
    refusal = _string(message, "refusal", f"messages[{i}]")
    if isinstance(content, str) and not tool_calls and not refusal:
        return content
    blocks: list[Body] = []
    if isinstance(content, str):
        blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            if not isinstance(part, Mapping):
                raise TranslationError("a content part must be an object", where)
            kind = part.get("type")
            if kind not in ("text", "refusal"):
                raise TranslationError(_unsupported(f"assistant part type {shown(kind)}"), f"{where}.type")
            blocks.append({"type": "text", "text": _string(part, kind, where)})
    elif content is not None:
        raise TranslationError("content must be a string, a list of parts or null", f"messages[{i}].content")
    if refusal:
        blocks.append({"type": "text", "text": refusal})
    # Anthropic rejects empty text blocks, which OpenAI clients send beside tool calls.
    blocks = [block for block in blocks if block["text"]]
    blocks.extend(_tool_use(call, f"messages[{i}].tool_calls[{j}]") for j, call in enumerate(tool_calls))
    return blocks


def _tool_use(call: Any, param: str) -> Body:
    if not isinstance(call, Mapping):
        raise TranslationError("a tool call must be an object", param)
    function = call.get("function")
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise TranslationError("a tool call needs a function name", f"{param}.function.name")
    parsed = _arguments(function.get("arguments"), f"{param}.function.arguments")
    return {
        "type": "tool_use",
        "id": _tool_id(call.get("id"), param),
        "name": function["name"],
        "input": parsed,
    }


def _arguments(arguments: Any, param: str) -> dict[str, Any]:
    parsed: Any = None
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        # Some clients send "" (or nothing) for a call without arguments; that means {}.
        parsed = {}
    elif isinstance(arguments, str):
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = None
    elif isinstance(arguments, dict):
        # Some agent frameworks send the object itself instead of its JSON text; it means the same.
        parsed = arguments
    if not isinstance(parsed, dict):
        raise TranslationError("tool call arguments must be a JSON object", param)
    # The text is the client's, parsed here: orjson reads it up to 1024 levels deep but writes 254.
    check_depth(parsed, param)
    return parsed


def _tool_result(message: Mapping[str, Any], i: int, out: Translated) -> Body:
    content = message.get("content")
    if content is None:
        content = ""
    elif not isinstance(content, str):
        content = _user_content(content, f"messages[{i}]", out)
    result: Body = {
        "type": "tool_result",
        "tool_use_id": _tool_id(message.get("tool_call_id"), f"messages[{i}]"),
        "content": content,
    }
    # Not part of OpenAI's schema, but agent frameworks set it; Anthropic can say it.
    if message.get("is_error") is True:
        result["is_error"] = True
    return result


def _tool_id(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value:
        field = "id" if "tool_calls" in param else "tool_call_id"
        raise TranslationError(f"{field} is required", f"{param}.{field}")
    return _TOOL_ID_CHARS.sub("_", value)
