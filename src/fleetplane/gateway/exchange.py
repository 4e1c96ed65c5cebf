"""How one request is put to one deployment, and how the answer is put back in the client's API.

When the client and the deployment speak the same API the body passes through with only `model`
replaced (and `include_usage` forced on OpenAI streams, so every stream is charged); otherwise it is
translated both ways by `translate/`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from fleetplane.gateway.config import DeploymentRuntime
from fleetplane.gateway.context import RequestContext
from fleetplane.gateway.errors import GatewayError, UpstreamError
from fleetplane.gateway.streams import AnthropicPassthrough, OpenAIPassthrough, StreamWatcher
from fleetplane.gateway.translate.errors import anthropic_error_to_openai, openai_error_to_anthropic
from fleetplane.gateway.translate.request_to_anthropic import openai_request_to_anthropic
from fleetplane.gateway.translate.request_to_openai import anthropic_request_to_openai
from fleetplane.gateway.translate.response_to_anthropic import openai_response_to_anthropic
from fleetplane.gateway.translate.response_to_openai import anthropic_response_to_openai
from fleetplane.gateway.translate.shared import TranslationError
from fleetplane.gateway.translate.stream_to_anthropic import OpenAIToAnthropicStream
from fleetplane.gateway.translate.stream_to_openai import AnthropicToOpenAIStream
from fleetplane.gateway.upstream.pool import UpstreamRequest, build_headers
from fleetplane.gateway.usage import anthropic_usage, counted_input, openai_usage
from fleetplane.telemetry.cost import TokenUsage

ANTHROPIC_VERSION = "2023-06-01"
# Client headers an Anthropic upstream must see to honour the client's request as sent.
_ANTHROPIC_PASS = ("anthropic-version", "anthropic-beta")

_PATHS = {"chat": "/chat/completions", "embeddings": "/embeddings", "messages": "/v1/messages"}


@dataclass
class Exchange:
    deployment: DeploymentRuntime
    request: UpstreamRequest
    upstream_api: str
    dropped: list[str] = field(default_factory=list)
    _reply: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    _stream: Callable[[], StreamWatcher] | None = None

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """The upstream's success body in the client's API."""
        return self._reply(body) if self._reply else body

    def watcher(self) -> StreamWatcher:
        assert self._stream is not None
        return self._stream()

    def usage(self, body: Mapping[str, Any]) -> TokenUsage | None:
        raw = body.get("usage")
        return anthropic_usage(raw) if self.upstream_api == "anthropic" else openai_usage(raw)

    def error(self, ctx: RequestContext, status: int, raw: bytes, retry_after: float | None) -> UpstreamError:
        """An upstream error answer in the client's API, marked as the upstream's."""
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        if self.upstream_api == "anthropic" and ctx.client_api == "openai":
            status, body = anthropic_error_to_openai(status, body)
        elif self.upstream_api == "openai" and ctx.client_api == "anthropic":
            status, body = openai_error_to_anthropic(status, body)
        message = _message(body) or (
            raw[:500].decode(errors="replace") if raw else f"upstream answered {status}"
        )
        label = f"{self.deployment.id} answered {status}: {message}"
        return UpstreamError(status if status < 600 else 503, label, retry_after=retry_after)


def _message(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return None


def prepare(ctx: RequestContext, deployment: DeploymentRuntime) -> Exchange:
    """Build the upstream request; a request the target API cannot express raises a 400."""
    provider = deployment.provider
    upstream_api = provider.api
    extra: dict[str, str] = {}
    dropped: list[str] = []
    reply: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    stream: Callable[[], StreamWatcher]
    model = ctx.requested_model
    try:
        if upstream_api == "anthropic":
            if ctx.operation == "embeddings":
                raise GatewayError(
                    "invalid_request",
                    f"deployment {deployment.id} speaks the Anthropic API, which has no embeddings",
                    param="model",
                )
            extra["anthropic-version"] = ANTHROPIC_VERSION
            if ctx.client_api == "anthropic":
                body = dict(ctx.body)
                for name in _ANTHROPIC_PASS:
                    if name in ctx.headers:
                        extra[name] = ctx.headers[name]
                stream = AnthropicPassthrough
            else:
                translated = openai_request_to_anthropic(
                    ctx.body, default_max_tokens=ctx.group.max_output_tokens
                )
                body, dropped = translated.body, translated.dropped
                reply = lambda b: anthropic_response_to_openai(b, model=model)  # noqa: E731
                include = ctx.include_usage
                stream = lambda: AnthropicToOpenAIStream(model=model, include_usage=include)  # noqa: E731
            path = _PATHS["messages"]
        else:
            if ctx.client_api == "anthropic":
                translated = anthropic_request_to_openai(ctx.body)
                body, dropped = translated.body, translated.dropped
                reply = lambda b: openai_response_to_anthropic(b, model=model)  # noqa: E731
                request_body = ctx.body
                stream = lambda: OpenAIToAnthropicStream(  # noqa: E731
                    model=model, input_tokens_estimate=counted_input("messages", request_body)
                )
            else:
                body = dict(ctx.body)
                include = ctx.include_usage
                stream = lambda: OpenAIPassthrough(include_usage=include)  # noqa: E731
            if ctx.stream:
                options = dict(body.get("stream_options") or {})
                options["include_usage"] = True
                body["stream_options"] = options
            path = _PATHS["embeddings" if ctx.operation == "embeddings" else "chat"]
    except TranslationError as exc:
        code = "unsupported_parameter"
        raise GatewayError("invalid_request", exc.message, param=exc.param, code=code) from exc
    body["model"] = deployment.model
    url = provider.base_url + path if upstream_api == "openai" else _anthropic_url(provider.base_url)
    if provider.query:
        url += "?" + urlencode(provider.query)
    headers = build_headers(provider, extra)
    if ctx.stream:
        headers["accept"] = "text/event-stream"
    return Exchange(
        deployment=deployment,
        request=UpstreamRequest(url=url, headers=headers, body=orjson.dumps(body)),
        upstream_api=upstream_api,
        dropped=dropped,
        _reply=reply,
        _stream=stream,
    )


def _anthropic_url(base: str) -> str:
    # Anthropic's SDK convention: the base URL has no /v1; accept either.
    return base + ("/messages" if base.endswith("/v1") else "/v1/messages")
