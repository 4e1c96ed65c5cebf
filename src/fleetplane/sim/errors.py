"""One error value for both APIs; each API module renders it in its provider's shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "too_large",
    "rate_limit",
    "overloaded",
    "server",
]


@dataclass(slots=True)
class SimError(Exception):
    status: int
    kind: Kind
    message: str
    param: str | None = None
    code: str | None = None
    retry_after: int | None = None
    # For OpenAI's 429 body, whose `type` says which limit refused: "requests" or "tokens".
    limit: str | None = None


def kind_for_status(status: int) -> Kind:
    """The error kind a bare status stands for, as used by `status=` directives, faults and outages."""
    known: dict[int, Kind] = {
        401: "authentication",
        403: "permission",
        404: "not_found",
        413: "too_large",
        429: "rate_limit",
        529: "overloaded",
    }
    if status in known:
        return known[status]
    return "server" if status >= 500 else "invalid_request"


def error_for_status(status: int, retry_after: int | None = None, *, source: str = "sim fault") -> SimError:
    kind = kind_for_status(status)
    messages: dict[Kind, str] = {
        "rate_limit": "Rate limit reached; please try again later.",
        "overloaded": "Overloaded",
        "server": "The server had an error while processing your request.",
    }
    message = messages.get(kind, f"Request failed with status {status}.")
    return SimError(status, kind, f"{message} ({source})", retry_after=retry_after, limit="requests")


def invalid(message: str, param: str | None = None, code: str | None = None) -> SimError:
    return SimError(400, "invalid_request", message, param=param, code=code)
