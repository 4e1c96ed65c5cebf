"""Model calls for the pipeline itself (the LLM router, LLM guardrail checks), through the fleetplane
gateway over HTTP so each one is governed, charged and traced like any other.

A call asks for one function call (`tool_choice` = that function) so the answer is structured JSON; a
model that answers in text is read as JSON if it can be. Each call is a `chat` span under the run's
current span, and the request carries `traceparent`, so the gateway's own span joins the run's trace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from fleetplane.telemetry.agent import spans as default_spans
from fleetplane.telemetry.cost import TokenUsage
from fleetplane.telemetry.propagation import inject_headers
from fleetplane.telemetry.spans import GenAISpans

GATEWAY_URL_ENV = "FLEETPLANE_GATEWAY_URL"  # the OpenAI base URL, e.g. http://127.0.0.1:8700/v1
GATEWAY_KEY_ENV = "FLEETPLANE_GATEWAY_KEY"


class GatewayError(Exception):
    """A model call that gave no usable answer; the message says what came back."""


@dataclass(frozen=True)
class Answer:
    arguments: dict[str, Any]
    model: str | None
    input_tokens: int
    output_tokens: int


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        key: str | None,
        *,
        http: httpx.AsyncClient | None = None,
        spans: GenAISpans | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._spans = spans

    @classmethod
    def from_env(cls, **options: Any) -> GatewayClient | None:
        url = os.environ.get(GATEWAY_URL_ENV)
        return cls(url, os.environ.get(GATEWAY_KEY_ENV), **options) if url else None

    async def close(self) -> None:
        await self._http.aclose()

    async def function(
        self, model: str, prompt: str, name: str, parameters: dict[str, Any], *, agent: str | None = None
    ) -> Answer:
        """Ask `model` to call function `name` with arguments matching `parameters` (a JSON schema)."""
        spans = self._spans or default_spans()
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "tools": [{"type": "function", "function": {"name": name, "parameters": parameters}}],
            "tool_choice": {"type": "function", "function": {"name": name}},
        }
        with spans.chat_span(provider="fleetplane", model=model, agent_name=agent) as span:
            headers = {"content-type": "application/json", **inject_headers()}
            if self.key:
                headers["authorization"] = f"Bearer {self.key}"
            try:
                response = await self._http.post(
                    f"{self.base_url}/chat/completions", content=orjson.dumps(body), headers=headers
                )
            except httpx.HTTPError as exc:
                raise GatewayError(f"the gateway at {self.base_url} is unreachable: {exc}") from exc
            if response.status_code != 200:
                raise GatewayError(f"the gateway answered {response.status_code}: {response.text[:300]}")
            data = response.json()
            usage = data.get("usage") or {}
            tokens = TokenUsage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
            span.set_usage(tokens)
            span.set_response(id=data.get("id"), model=data.get("model"))
            return Answer(
                _arguments(data, name), data.get("model"), tokens.input_tokens, tokens.output_tokens
            )


def _arguments(data: dict[str, Any], name: str) -> dict[str, Any]:
    try:
        message = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise GatewayError("the gateway's answer has no choices[0].message") from None
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        if function.get("name") == name:
            return _json_object(function.get("arguments") or "{}", f"the arguments of {name}")
    return _json_object(message.get("content") or "", "the model's text answer")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise GatewayError(f"{what} is not JSON: {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise GatewayError(f"{what} is not a JSON object: {text[:200]!r}")
    return value
