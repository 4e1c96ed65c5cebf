from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import openai
import orjson
import pytest

from fleetplane.gateway.translate import anthropic_error_to_openai, openai_error_to_anthropic


def anthropic_body(kind: str, message: str = "boom") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}


def openai_body(kind: str, code: str | None = None, message: str = "boom") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# (Anthropic status, Anthropic type, OpenAI status, OpenAI type, OpenAI code, OpenAI SDK exception)
TO_OPENAI = [
    (400, "invalid_request_error", 400, "invalid_request_error", None, openai.BadRequestError),
    (401, "authentication_error", 401, "authentication_error", "invalid_api_key", openai.AuthenticationError),
    (402, "billing_error", 402, "insufficient_quota", "insufficient_quota", openai.APIStatusError),
    (403, "permission_error", 403, "permission_error", None, openai.PermissionDeniedError),
    (404, "not_found_error", 404, "invalid_request_error", "not_found", openai.NotFoundError),
    (413, "request_too_large", 413, "invalid_request_error", "request_too_large", openai.APIStatusError),
    (429, "rate_limit_error", 429, "rate_limit_error", "rate_limit_exceeded", openai.RateLimitError),
    (500, "api_error", 500, "server_error", None, openai.InternalServerError),
    (504, "timeout_error", 504, "timeout_error", None, openai.InternalServerError),
    (529, "overloaded_error", 503, "service_unavailable", "overloaded", openai.InternalServerError),
    (503, "overloaded_error", 503, "service_unavailable", "overloaded", openai.InternalServerError),
]


@pytest.mark.parametrize(("status", "kind", "want_status", "want_type", "want_code", "exception"), TO_OPENAI)
def test_anthropic_error_to_openai(
    openai_sdk: Callable[[bytes, int], openai.OpenAI],
    status: int,
    kind: str,
    want_status: int,
    want_type: str,
    want_code: str | None,
    exception: type[Exception],
) -> None:
    got_status, body = anthropic_error_to_openai(status, anthropic_body(kind))
    assert (got_status, body) == (want_status, openai_body(want_type, want_code))
    client = openai_sdk(orjson.dumps(body), got_status)
    with pytest.raises(exception) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert type(caught.value) is exception
    assert caught.value.body == body["error"]  # type: ignore[attr-defined]


# (OpenAI status, OpenAI body, Anthropic status, Anthropic type, Anthropic SDK exception)
TO_ANTHROPIC = [
    (400, openai_body("invalid_request_error"), 400, "invalid_request_error", anthropic.BadRequestError),
    (
        401,
        openai_body("invalid_request_error", "invalid_api_key"),
        401,
        "authentication_error",
        anthropic.AuthenticationError,
    ),
    (403, openai_body("permission_error"), 403, "permission_error", anthropic.PermissionDeniedError),
    (
        404,
        openai_body("invalid_request_error", "model_not_found"),
        404,
        "not_found_error",
        anthropic.NotFoundError,
    ),
    (413, openai_body("invalid_request_error"), 413, "request_too_large", anthropic.RequestTooLargeError),
    (
        422,
        openai_body("invalid_request_error"),
        422,
        "invalid_request_error",
        anthropic.UnprocessableEntityError,
    ),
    (429, openai_body("tokens", "rate_limit_exceeded"), 429, "rate_limit_error", anthropic.RateLimitError),
    (500, openai_body("server_error"), 500, "api_error", anthropic.InternalServerError),
    (502, openai_body("server_error"), 502, "api_error", anthropic.InternalServerError),
    (503, openai_body("server_error"), 529, "overloaded_error", anthropic.OverloadedError),
    (504, openai_body("server_error"), 504, "timeout_error", anthropic.GatewayTimeoutError),
]


@pytest.mark.parametrize(("status", "body", "want_status", "want_type", "exception"), TO_ANTHROPIC)
def test_openai_error_to_anthropic(
    anthropic_sdk: Callable[[bytes, int], anthropic.Anthropic],
    status: int,
    body: dict[str, Any],
    want_status: int,
    want_type: str,
    exception: type[Exception],
) -> None:
    got_status, translated = openai_error_to_anthropic(status, body)
    assert (got_status, translated) == (
        want_status,
        {"type": "error", "error": {"type": want_type, "message": "boom"}},
    )
    client = anthropic_sdk(orjson.dumps(translated), got_status)
    with pytest.raises(exception) as caught:
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert type(caught.value) is exception


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"type": "api_error", "message": "from bytes"}}', "from bytes"),
        ('{"error": {"message": "from str"}}', "from str"),
        (b"<html>502 Bad Gateway</html>\n", "<html>502 Bad Gateway</html>"),
        (b"", "upstream returned HTTP 502"),
        (None, "upstream returned HTTP 502"),
        ({"error": "plain string"}, "plain string"),
        ({"detail": "FastAPI style"}, "upstream returned HTTP 502"),
        ([1, 2], "upstream returned HTTP 502"),
    ],
)
def test_bodies_that_are_not_the_expected_shape(body: Any, message: str) -> None:
    assert anthropic_error_to_openai(502, body) == (
        502,
        {"error": {"message": message, "type": "server_error", "param": None, "code": None}},
    )
    assert openai_error_to_anthropic(502, body) == (
        502,
        {"type": "error", "error": {"type": "api_error", "message": message}},
    )


def test_unknown_anthropic_type_falls_back_to_the_status() -> None:
    assert anthropic_error_to_openai(429, anthropic_body("brand_new_error")) == (
        429,
        openai_body("rate_limit_error", "rate_limit_exceeded"),
    )
    assert anthropic_error_to_openai(418, anthropic_body("brand_new_error"))[1]["error"]["type"] == (
        "invalid_request_error"
    )
