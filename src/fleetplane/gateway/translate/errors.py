"""Upstream error answers, rewritten so a client always gets its own API's error shape.

The OpenAI error types follow the gateway's own vocabulary (`fleetplane.gateway.errors`), so a client sees
the same types whether the gateway or an upstream refused it; the SDKs of both APIs pick their exception
class from the HTTP status, which is kept except where the two APIs disagree (Anthropic's 529 overloaded
is OpenAI's 503).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from fleetplane.gateway.translate.shared import Body

# Anthropic error type -> (OpenAI error type, OpenAI code)
_TO_OPENAI: dict[str, tuple[str, str | None]] = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("authentication_error", "invalid_api_key"),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
    "permission_error": ("permission_error", None),
    "not_found_error": ("invalid_request_error", "not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
    "api_error": ("server_error", None),
    "timeout_error": ("timeout_error", None),
    "overloaded_error": ("service_unavailable", "overloaded"),
}

# HTTP status -> Anthropic error type
_ANTHROPIC_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# OpenAI error type -> HTTP status, for errors that arrive inside a stream, after the 200.
_OPENAI_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "insufficient_quota": 429,
    "rate_limit_error": 429,
    "tokens": 429,
    "requests": 429,
    "service_unavailable": 503,
    "timeout_error": 504,
}

_OVERLOADED_OPENAI = 503
_OVERLOADED_ANTHROPIC = 529


def anthropic_error_to_openai(status: int, body: Mapping[str, Any] | bytes | str | None) -> tuple[int, Body]:
    error = _error_object(body)
    kind = error.get("type")
    if not isinstance(kind, str) or kind not in _TO_OPENAI:
        kind = anthropic_error_type(status)
    if kind == "overloaded_error":
        status = _OVERLOADED_OPENAI
    openai_type, code = _TO_OPENAI[kind]
    message = _message(error, status)
    return status, {"error": {"message": message, "type": openai_type, "param": None, "code": code}}


def openai_error_to_anthropic(status: int, body: Mapping[str, Any] | bytes | str | None) -> tuple[int, Body]:
    kind = anthropic_error_type(status)
    if kind == "overloaded_error":
        status = _OVERLOADED_ANTHROPIC
    message = _message(_error_object(body), status)
    return status, {"type": "error", "error": {"type": kind, "message": message}}


def openai_stream_error_status(body: Mapping[str, Any]) -> int:
    """The status an OpenAI error payload inside a stream would have had as a response."""
    kind = _error_object(body).get("type")
    return _OPENAI_TYPE_STATUS.get(kind, 500) if isinstance(kind, str) else 500


def anthropic_error_type(status: int) -> str:
    if status in _ANTHROPIC_TYPE:
        return _ANTHROPIC_TYPE[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def readable_error(error: Any) -> dict[str, str]:
    """An upstream's error object reduced to the string fields a gateway reads (`type`, `message`, `code`),
    so junk inside it (a list for a message, a structure nested too deep to print) cannot make whoever
    reports it fail. A bare string is the message; anything else unreadable gives an empty object."""
    if isinstance(error, str):
        return {"message": error}
    if not isinstance(error, Mapping):
        return {}
    return {key: error[key] for key in ("type", "message", "code") if isinstance(error.get(key), str)}


def _error_object(body: Mapping[str, Any] | bytes | str | None) -> Mapping[str, Any]:
    """The `error` object both APIs nest their details in; a body that is not JSON (a proxy's HTML page)
    is carried as the message."""
    if isinstance(body, bytes | str):
        raw = body
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            text = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).strip()
            return {"message": text[:1000]} if text else {}
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            return error
        if isinstance(error, str):
            return {"message": error}
    return {}


def _message(error: Mapping[str, Any], status: int) -> str:
    message = error.get("message")
    if isinstance(message, str) and message:
        return message
    return f"upstream returned HTTP {status}"
