"""Every bad input gets the error shape of the endpoint's API, the right status, and charges nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
from harness import GatewayUnderTest

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
EMBEDDINGS = "/v1/embeddings"
HELLO = [{"role": "user", "content": "hi"}]


def openai_error(
    message: str, param: str | None, code: str | None, type_: str = "invalid_request_error"
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def anthropic_error(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


# (path, raw body or JSON, key name, expected status, expected body)
CASES: list[tuple[str, str, bytes | dict[str, Any], str | None, int, dict[str, Any]]] = [
    (
        "malformed-json",
        CHAT,
        b'{"model": ',
        "full",
        400,
        openai_error(
            "Request body is not valid JSON (error at line 1, column 11); expected a JSON object.",
            None,
            "invalid_request",
        ),
    ),
    (
        "empty-body",
        CHAT,
        b"",
        "full",
        400,
        openai_error("Request body is empty; expected a JSON object.", None, "invalid_request"),
    ),
    (
        "array-body",
        CHAT,
        b"[1, 2]",
        "full",
        400,
        openai_error("Request body must be a JSON object, found an array.", None, "invalid_request"),
    ),
    (
        "missing-model",
        CHAT,
        {"messages": HELLO},
        "full",
        400,
        openai_error("Missing required parameter: 'model'.", "model", "invalid_request"),
    ),
    (
        "model-wrong-type",
        CHAT,
        {"model": 5, "messages": HELLO},
        "full",
        400,
        openai_error("'model' must be a non-empty string, found a number.", "model", "invalid_request"),
    ),
    (
        "missing-messages",
        CHAT,
        {"model": "solo"},
        "full",
        400,
        openai_error("Missing required parameter: 'messages'.", "messages", "invalid_request"),
    ),
    (
        "empty-messages",
        CHAT,
        {"model": "solo", "messages": []},
        "full",
        400,
        openai_error(
            "'messages' must be a non-empty array, found an empty array.", "messages", "invalid_request"
        ),
    ),
    (
        "message-not-object",
        CHAT,
        {"model": "solo", "messages": ["hi"]},
        "full",
        400,
        openai_error("'messages[0]' must be an object, found a string.", "messages[0]", "invalid_request"),
    ),
    (
        "stream-wrong-type",
        CHAT,
        {"model": "solo", "messages": HELLO, "stream": "yes"},
        "full",
        400,
        openai_error("'stream' must be a boolean, found a string.", "stream", "invalid_request"),
    ),
    (
        "max-tokens-negative",
        CHAT,
        {"model": "solo", "messages": HELLO, "max_tokens": -3},
        "full",
        400,
        openai_error("'max_tokens' must be a positive integer, found -3.", "max_tokens", "invalid_request"),
    ),
    (
        "unknown-model",
        CHAT,
        {"model": "gpt-9", "messages": HELLO},
        "full",
        404,
        openai_error(
            "The model 'gpt-9' does not exist. GET /v1/models lists the models this key may use.",
            "model",
            "model_not_found",
        ),
    ),
    (
        "model-not-allowed",
        CHAT,
        {"model": "chain", "messages": HELLO},
        "limited",
        403,
        openai_error(
            "The key 'limited' may not use the model 'chain'.",
            "model",
            "model_not_allowed",
            "permission_error",
        ),
    ),
    (
        "embeddings-model-for-chat",
        CHAT,
        {"model": "embed", "messages": HELLO},
        "full",
        400,
        openai_error(
            "The model 'embed' is a embeddings model; this endpoint needs a chat model.",
            "model",
            "wrong_model_type",
        ),
    ),
    (
        "chat-model-for-embeddings",
        EMBEDDINGS,
        {"model": "solo", "input": "x"},
        "full",
        400,
        openai_error(
            "The model 'solo' is a chat model; this endpoint needs an embeddings model.",
            "model",
            "wrong_model_type",
        ),
    ),
    (
        "embeddings-missing-input",
        EMBEDDINGS,
        {"model": "embed"},
        "full",
        400,
        openai_error("Missing required parameter: 'input'.", "input", "invalid_request"),
    ),
    (
        "missing-key",
        CHAT,
        {"model": "solo", "messages": HELLO},
        None,
        401,
        openai_error(
            "No API key: send a fleetplane virtual key as 'Authorization: Bearer <key>' "
            "or 'x-api-key: <key>'.",
            None,
            "missing_api_key",
            "authentication_error",
        ),
    ),
    (
        "wrong-key",
        CHAT,
        {"model": "solo", "messages": HELLO},
        "fp-not-a-key",
        401,
        openai_error(
            "Invalid API key: no fleetplane virtual key matches it.",
            None,
            "invalid_api_key",
            "authentication_error",
        ),
    ),
    (
        "n-to-anthropic",
        CHAT,
        {"model": "claude", "messages": HELLO, "n": 2},
        "full",
        400,
        openai_error(
            "n other than 1 is not supported by Anthropic deployments", "n", "unsupported_parameter"
        ),
    ),
    (
        "too-deep",
        CHAT,
        b'{"model": "solo", "messages": [{"role": "user", "content": "hi"}], "x": '
        + b"[" * 300
        + b"]" * 300
        + b"}",
        "full",
        400,
        openai_error("Request body is nested more than 200 levels deep.", None, "invalid_request"),
    ),
    (
        "messages-missing-max-tokens",
        MESSAGES,
        {"model": "claude", "messages": HELLO},
        "full",
        400,
        anthropic_error("invalid_request_error", "Missing required parameter: 'max_tokens'."),
    ),
    (
        "messages-unknown-model",
        MESSAGES,
        {"model": "nope", "max_tokens": 5, "messages": HELLO},
        "full",
        404,
        anthropic_error(
            "not_found_error",
            "The model 'nope' does not exist. GET /v1/models lists the models this key may use.",
        ),
    ),
    (
        "messages-not-allowed",
        MESSAGES,
        {"model": "claude", "max_tokens": 5, "messages": HELLO},
        "limited",
        403,
        anthropic_error("permission_error", "The key 'limited' may not use the model 'claude'."),
    ),
    (
        "messages-wrong-key",
        MESSAGES,
        {"model": "claude", "max_tokens": 5, "messages": HELLO},
        "fp-nope",
        401,
        anthropic_error("authentication_error", "Invalid API key: no fleetplane virtual key matches it."),
    ),
    (
        "messages-malformed",
        MESSAGES,
        b"{oops",
        "full",
        400,
        anthropic_error(
            "invalid_request_error",
            "Request body is not valid JSON (error at line 1, column 2); expected a JSON object.",
        ),
    ),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "key", "status", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input(
    gateway: GatewayUnderTest,
    case: str,
    path: str,
    body: Any,
    key: str | None,
    status: int,
    expected: dict[str, Any],
) -> None:
    headers = {"content-type": "application/json"}
    if key is not None:
        secret = gateway.keys.get(key, key)
        headers["x-api-key" if path == MESSAGES else "authorization"] = (
            secret if path == MESSAGES else f"Bearer {secret}"
        )
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    response = httpx.post(gateway.url + path, content=content, headers=headers, timeout=10)
    assert response.status_code == status
    assert response.json() == expected
    assert response.headers["x-fleetplane-error-source"] == "gateway"
    assert gateway.charged() == (0, 0, Decimal(0))


def test_body_over_the_limit_is_413_before_reading_it(make_gateway: Any) -> None:
    gateway = make_gateway(max_body="2000")
    big = {"model": "solo", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = httpx.post(
        gateway.url + CHAT, json=big, headers={"authorization": f"Bearer {gateway.keys['full']}"}, timeout=10
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert response.json()["error"]["message"].startswith("Request body is 50")
    anthropic_response = httpx.post(
        gateway.url + MESSAGES,
        json={**big, "max_tokens": 5},
        headers={"x-api-key": gateway.keys["full"]},
        timeout=10,
    )
    assert anthropic_response.status_code == 413
    assert anthropic_response.json()["error"]["type"] == "request_too_large"
    assert gateway.charged() == (0, 0, Decimal(0))


def test_the_sdks_raise_their_own_error_types(gateway: GatewayUnderTest) -> None:
    o = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["limited"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        o.chat.completions.create(model="chain", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        o.chat.completions.create(model="missing", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        o.chat.completions.create(model="solo", messages=[])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.v1, api_key="fp-wrong", max_retries=0).models.list()
    a = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.keys["limited"], max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError):
        a.messages.create(model="claude", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(anthropic.NotFoundError):
        a.messages.create(model="missing", max_tokens=5, messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway.url, api_key="fp-wrong", max_retries=0).messages.create(
            model="solo",
            max_tokens=5,
            messages=HELLO,  # type: ignore[arg-type]
        )
    assert gateway.charged() == (0, 0, Decimal(0))


def test_revoked_key_is_refused(gateway: GatewayUnderTest) -> None:
    import asyncio

    from fleetplane.store.db import Store
    from fleetplane.store.keys import KeyRepository

    async def revoke() -> None:
        store = await Store.open(gateway.database_url)
        try:
            await KeyRepository(store).revoke("full", now=0.0)
        finally:
            await store.close()

    asyncio.run(revoke())
    httpx.post(gateway.url + "/admin/gateway/reload", timeout=10).raise_for_status()
    response = httpx.post(
        gateway.url + CHAT,
        json={"model": "solo", "messages": HELLO},
        headers={"authorization": f"Bearer {gateway.keys['full']}"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "API key 'full' has been revoked."
