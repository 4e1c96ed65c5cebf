"""An Anthropic Messages request body, rewritten for an OpenAI Chat Completions deployment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from fleetplane.gateway.translate.media import openai_document, openai_image_url
from fleetplane.gateway.translate.shared import (
    Body,
    Translated,
    TranslationError,
    check_depth,
    json_str,
    shown,
)

_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
# Fields of an Anthropic block or tool that only steer Anthropic's own machinery (prompt caching, tool
# search, citations); OpenAI has no place for them.
_ANTHROPIC_ONLY = ("cache_control", "citations", "defer_loading", "input_examples", "allowed_callers")
_STRUCTURAL = frozenset({"model", "messages", "system", "max_tokens", "tools", "tool_choice"})

MaxTokensParam = Literal["max_completion_tokens", "max_tokens"]


def anthropic_request_to_openai(
    body: Mapping[str, Any], *, max_tokens_param: MaxTokensParam = "max_completion_tokens"
) -> Translated:
    """`max_tokens_param` names the limit for the deployment: OpenAI's reasoning models accept only
    `max_completion_tokens`, while some older OpenAI-compatible servers know only `max_tokens`.

    Any JSON body either translates or raises `TranslationError` naming the field (with its index path)
    and what it should have been: nothing else escapes, whatever the client sent."""
    if not isinstance(body, Mapping):
        raise TranslationError("the request body must be a JSON object", "body")
    check_depth(body)
    out = Translated({})
    result = out.body
    if "model" in body:
        result["model"] = body["model"]
    result["messages"] = _system(body.get("system"), out) + _messages(body.get("messages"), out)
    if body.get("max_tokens") is not None:
        result[max_tokens_param] = body["max_tokens"]
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


def _copy(name: str) -> Callable[[Any, Translated], None]:
    def handler(value: Any, out: Translated) -> None:
        out.body[name] = value

    return handler


def _stream(value: Any, out: Translated) -> None:
    out.body["stream"] = bool(value)
    if value:
        # OpenAI reports stream usage only when asked; the gateway charges from it.
        out.body["stream_options"] = {"include_usage": True}


def _metadata(value: Any, out: Translated) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "user_id" and item is not None:
                out.body["user"] = item
            elif item is not None:
                out.drop(f"metadata.{key}")


def _thinking(value: Any, out: Translated) -> None:
    if not (isinstance(value, Mapping) and value.get("type") == "disabled"):
        out.drop("thinking")


def _output_config(value: Any, out: Translated) -> None:
    if not isinstance(value, Mapping):
        return
    for key, item in value.items():
        if item is None:
            continue
        if key == "format" and isinstance(item, Mapping) and item.get("type") == "json_schema":
            schema = item.get("schema")
            if not isinstance(schema, Mapping):
                raise TranslationError(
                    "output_config.format json_schema needs a schema", "output_config.format.schema"
                )
            out.body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": schema, "strict": True},
            }
        else:
            out.drop(f"output_config.{key}")


def _mcp_servers(value: Any, out: Translated) -> None:
    if value:
        raise TranslationError("mcp_servers is not supported by OpenAI deployments", "mcp_servers")


_PARAMS: dict[str, Callable[[Any, Translated], None]] = {
    "stream": _stream,
    "temperature": _copy("temperature"),
    "top_p": _copy("top_p"),
    "stop_sequences": _copy("stop"),
    "metadata": _metadata,
    "thinking": _thinking,
    "output_config": _output_config,
    "mcp_servers": _mcp_servers,
}


def _tools(body: Mapping[str, Any], out: Translated) -> None:
    tools = body.get("tools")
    if tools is None or tools == []:
        return
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list", "tools")
    out.body["tools"] = [_tool(tool, i, out) for i, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if isinstance(kind, str) and kind in _TOOL_CHOICE:
        out.body["tool_choice"] = _TOOL_CHOICE[kind]
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out.body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise TranslationError(
            f"tool_choice {shown(choice)} is not supported by OpenAI deployments", "tool_choice"
        )
    if choice.get("disable_parallel_tool_use") and kind != "none":
        out.body["parallel_tool_calls"] = False


def _tool(tool: Any, i: int, out: Translated) -> Body:
    if not isinstance(tool, Mapping):
        raise TranslationError("a tool must be an object", f"tools[{i}]")
    kind = tool.get("type")
    if kind not in (None, "custom"):
        # Server tools (web search, code execution) and Anthropic-defined client tools (bash, text editor,
        # computer) have no OpenAI function schema.
        raise TranslationError(
            f"tool type {shown(kind)} is not supported by OpenAI deployments", f"tools[{i}].type"
        )
    if not isinstance(tool.get("name"), str):
        raise TranslationError("a tool needs a name", f"tools[{i}].name")
    function: Body = {"name": tool["name"]}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    if tool.get("strict") is not None:
        function["strict"] = bool(tool["strict"])
    _drop_anthropic_only(tool, out)
    return {"type": "function", "function": function}


def _drop_anthropic_only(block: Mapping[str, Any], out: Translated) -> None:
    for field in _ANTHROPIC_ONLY:
        if block.get(field) is not None:
            out.drop(field)


def _system(system: Any, out: Translated) -> list[Body]:
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise TranslationError("system must be a string or a list of text blocks", "system")
    parts = [_text_part(block, f"system[{j}]", out) for j, block in enumerate(system)]
    return [{"role": "system", "content": parts[0]["text"] if len(parts) == 1 else parts}]


def _text_part(block: Any, param: str, out: Translated) -> Body:
    if not isinstance(block, Mapping):
        raise TranslationError("a content block must be an object", param)
    if block.get("type") != "text":
        raise TranslationError("only text blocks are allowed here", f"{param}.type")
    _drop_anthropic_only(block, out)
    return {"type": "text", "text": _text(block, param)}


def _text(block: Mapping[str, Any], param: str) -> str:
    """A text block's text; absent reads as empty (the upstream says whether empty is allowed)."""
    text = block.get("text")
    if text is None:
        return ""
    if not isinstance(text, str):
        raise TranslationError("text must be a string", f"{param}.text")
    return text


def _messages(messages: Any, out: Translated) -> list[Body]:
    if not isinstance(messages, list):
        raise TranslationError("messages must be a list", "messages")
    result: list[Body] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TranslationError("a message must be an object", f"messages[{i}]")
        role = message.get("role")
        if role == "user":
            result.extend(_user(message.get("content"), f"messages[{i}]", out))
        elif role == "assistant":
            result.append(_assistant(message.get("content"), f"messages[{i}]", out))
        else:
            raise TranslationError(f"unknown role {shown(role)}", f"messages[{i}].role")
    return result


def _user(content: Any, param: str, out: Translated) -> list[Body]:
    """One Anthropic user turn: its tool results become `tool` messages, which OpenAI wants right after
    the assistant's calls, and the rest one user message after them."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise TranslationError("content must be a string or a list of blocks", f"{param}.content")
    tool_messages: list[Body] = []
    parts: list[Body] = []
    for j, block in enumerate(content):
        where = f"{param}.content[{j}]"
        if not isinstance(block, Mapping):
            raise TranslationError("a content block must be an object", where)
        kind = block.get("type")
        if kind == "tool_result":
            tool_messages.append(_tool_message(block, where, out))
            continue
        if kind == "text":
            parts.append(_text_part(block, where, out))
        elif kind == "image":
            parts.append(
                {"type": "image_url", "image_url": {"url": openai_image_url(block.get("source"), where)}}
            )
        elif kind == "document":
            parts.append(openai_document(block, where))
        else:
            raise TranslationError(
                f"content block type {shown(kind)} is not supported by OpenAI deployments", f"{where}.type"
            )
        _drop_anthropic_only(block, out)
    if parts:
        tool_messages.append({"role": "user", "content": parts})
    return tool_messages


def _tool_message(block: Mapping[str, Any], param: str, out: Translated) -> Body:
    content = block.get("content")
    if content is None:
        content = ""
    elif isinstance(content, list):
        # OpenAI tool messages carry text only; an image here cannot be forwarded faithfully.
        content = [_text_part(item, f"{param}.content[{k}]", out) for k, item in enumerate(content)]
    elif not isinstance(content, str):
        raise TranslationError("tool_result content must be a string or a list of blocks", f"{param}.content")
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        # The id pairs the result with its call; OpenAI refuses a tool message without one.
        raise TranslationError("tool_use_id is required", f"{param}.tool_use_id")
    if block.get("is_error"):
        out.drop("is_error")
    _drop_anthropic_only(block, out)
    return {"role": "tool", "tool_call_id": tool_use_id, "content": content}


def _assistant(content: Any, param: str, out: Translated) -> Body:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise TranslationError("content must be a string or a list of blocks", f"{param}.content")
    texts: list[str] = []
    calls: list[Body] = []
    for j, block in enumerate(content):
        where = f"{param}.content[{j}]"
        if not isinstance(block, Mapping):
            raise TranslationError("a content block must be an object", where)
        kind = block.get("type")
        if kind == "text":
            texts.append(_text(block, where))
        elif kind == "tool_use":
            calls.append(_tool_call(block, where))
        elif kind in ("thinking", "redacted_thinking"):
            # Chat Completions cannot take reasoning back; the answer it led to is kept.
            out.drop("thinking")
            continue
        else:
            raise TranslationError(
                f"content block type {shown(kind)} is not supported by OpenAI deployments", f"{where}.type"
            )
        _drop_anthropic_only(block, out)
    # Text blocks of one assistant turn are consecutive pieces of one reply.
    message: Body = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_call(block: Mapping[str, Any], param: str) -> Body:
    call_id, name, tool_input = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not call_id:
        # The id pairs the call with its result; OpenAI refuses a call without one.
        raise TranslationError("id is required", f"{param}.id")
    if not isinstance(name, str):
        raise TranslationError("a tool_use block needs a name", f"{param}.name")
    if tool_input is None:
        tool_input = {}
    if not isinstance(tool_input, Mapping):
        raise TranslationError("tool_use input must be an object", f"{param}.input")
    # The body passed check_depth, so its input serializes.
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json_str(tool_input)}}
