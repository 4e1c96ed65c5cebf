"""Errors a client sees, in the shape of the API it called (OpenAI or Anthropic), and who decided them.

Every refusal is a `GatewayError`; the handler renders it for the endpoint's API. The
`x-fleetplane-error-source` header tells a gateway decision (`gateway`) from an upstream's answer
passed on (`upstream`), so a client can tell our 429 from a provider's.
"""

from __future__ import annotations

import math
from typing import Literal

import orjson

Api = Literal["openai", "anthropic"]
Source = Literal["gateway", "upstream"]

# kind -> (HTTP status, OpenAI error type, Anthropic error type)
_KINDS: dict[str, tuple[int, str, str]] = {
    "invalid_request": (400, "invalid_request_error", "invalid_request_error"),
    "authentication": (401, "authentication_error", "authentication_error"),
    "permission": (403, "permission_error", "permission_error"),
    "not_found": (404, "invalid_request_error", "not_found_error"),
    "too_large": (413, "invalid_request_error", "request_too_large"),
    "rate_limit": (429, "rate_limit_error", "rate_limit_error"),
    "upstream": (502, "api_error", "api_error"),
    "unavailable": (503, "service_unavailable", "overloaded_error"),
    "timeout": (504, "timeout_error", "timeout_error"),
    "internal": (500, "server_error", "api_error"),
}


class GatewayError(Exception):
    def __init__(
        self,
        kind: str,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        source: Source = "gateway",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param
        self.code = code
        self.status = status if status is not None else _KINDS[kind][0]
        self.headers = dict(headers or {})
        self.source: Source = source
        self.retry_after = retry_after

    def body(self, api: Api) -> bytes:
        _, openai_type, anthropic_type = _KINDS[self.kind]
        if api == "anthropic":
            # Anthropic's error shape has no `param`: name the field in the message, as its API does.
            message = self.message
            if self.param and self.param not in message:
                message = f"{self.param}: {message}"
            return orjson.dumps({"type": "error", "error": {"type": anthropic_type, "message": message}})
        return orjson.dumps(
            {"error": {"message": self.message, "type": openai_type, "param": self.param, "code": self.code}}
        )

    def response_headers(self) -> dict[str, str]:
        headers = {"x-fleetplane-error-source": self.source, **self.headers}
        if self.retry_after is not None and math.isfinite(self.retry_after):
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class UpstreamError(GatewayError):
    """An upstream's own error answer, passed to the client in the client's API shape."""

    def __init__(
        self, status: int, message: str, *, kind: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(
            kind or kind_for_status(status),
            message,
            status=status,
            source="upstream",
            retry_after=retry_after,
        )


def kind_for_status(status: int) -> str:
    for kind, (code, _, _) in _KINDS.items():
        if code == status:
            return kind
    if status == 529:
        return "unavailable"
    return "invalid_request" if 400 <= status < 500 else "upstream"
