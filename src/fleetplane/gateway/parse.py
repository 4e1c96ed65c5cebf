"""Reading a request: size limit, JSON, and the few fields the gateway itself needs.

The body is parsed once with orjson and never validated as a whole (the upstream does that); only the
fields a policy reads are checked, each with a message naming the field and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from fleetplane.gateway.errors import GatewayError
from fleetplane.gateway.translate.shared import MAX_DEPTH, too_deep

DEFAULT_MAX_BODY = 20 * 1024 * 1024


@dataclass(frozen=True)
class Parsed:
    raw: bytes
    body: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(size, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> GatewayError:
    return GatewayError(
        "too_large",
        f"Request body is {size} bytes or more; this gateway accepts at most {limit} bytes.",
        code="request_too_large",
    )


def _invalid(message: str, param: str | None) -> GatewayError:
    return GatewayError("invalid_request", message, param=param, code="invalid_request")


def _type_name(value: Any) -> str:
    if value == [] or value == {}:
        return "an empty array" if isinstance(value, list) else "an empty object"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def parse(raw: bytes, operation: str) -> Parsed:
    if not raw.strip():
        raise _invalid("Request body is empty; expected a JSON object.", None)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        message = f"Request body is not valid JSON (error at {where}); expected a JSON object."
        raise _invalid(message, None) from None
    if not isinstance(body, dict):
        raise _invalid(f"Request body must be a JSON object, found {_type_name(body)}.", None)
    if too_deep(body):
        # orjson reads deeper than it writes: refuse here what could not be sent on.
        raise _invalid(f"Request body is nested more than {MAX_DEPTH} levels deep.", None)
    model = body.get("model")
    if model is None:
        raise _invalid("Missing required parameter: 'model'.", "model")
    if not isinstance(model, str) or not model:
        raise _invalid(f"'model' must be a non-empty string, found {_type_name(model)}.", "model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _invalid(f"'stream' must be a boolean, found {_type_name(stream)}.", "stream")
    if operation == "embeddings":
        _check_embedding_input(body)
        if stream:
            raise _invalid("Embeddings cannot be streamed; leave out 'stream'.", "stream")
    else:
        _check_messages(body, operation)
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _invalid(
                f"'stream_options' must be an object, found {_type_name(options)}.", "stream_options"
            )
        include_usage = options.get("include_usage") is True
    return Parsed(raw=raw, body=body, model=model, stream=stream, include_usage=include_usage)


def _check_messages(body: dict[str, Any], operation: str) -> None:
    messages = body.get("messages")
    if messages is None:
        raise _invalid("Missing required parameter: 'messages'.", "messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid(f"'messages' must be a non-empty array, found {_type_name(messages)}.", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(
                f"'messages[{i}]' must be an object, found {_type_name(message)}.", f"messages[{i}]"
            )
        role = message.get("role")
        if not isinstance(role, str):
            raise _invalid(
                f"'messages[{i}].role' must be a string, found {_type_name(role)}.", f"messages[{i}].role"
            )
    if operation == "messages":
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise _invalid("Missing required parameter: 'max_tokens'.", "max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _invalid(f"'max_tokens' must be a positive integer, found {max_tokens!r}.", "max_tokens")
    else:
        for name in ("max_tokens", "max_completion_tokens"):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise _invalid(f"'{name}' must be a positive integer, found {value!r}.", name)


def _check_embedding_input(body: dict[str, Any]) -> None:
    value = body.get("input")
    if value is None:
        raise _invalid("Missing required parameter: 'input'.", "input")
    if isinstance(value, str):
        return
    if isinstance(value, list) and value and all(isinstance(v, str | int | list) for v in value):
        return
    raise _invalid(
        "'input' must be a string, an array of strings or an array of token arrays, "
        f"found {_type_name(value)}.",
        "input",
    )
