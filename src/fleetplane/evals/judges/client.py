"""A judge's call to a model through the gateway, over HTTP (OpenAI chat API), with a forced tool call.

The verdict comes back as the arguments of a `record_verdict` function the judge must call (`tool_choice`
names it), so it is data checked against a JSON Schema, not a number fished out of prose. Models that
answer in text anyway are read as JSON, else the verdict is refused (`JudgeError`).

Judge calls name themselves with `x-fleetplane-prompt-name: fleetplane.judge.<kind>`: the gateway puts it on
their spans, and the online evaluator skips those (a judge's answers are not production traffic to judge).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from fleetplane.evals.judges.family import ModelCatalog

JUDGE_PROMPT_PREFIX = "fleetplane.judge."
VERDICT_TOOL = "record_verdict"
GATEWAY_ENV = "FLEETPLANE_GATEWAY_URL"
KEY_ENV = "FLEETPLANE_JUDGE_KEY"


class JudgeError(RuntimeError):
    """The judge's call failed or its answer held no valid verdict."""


@dataclass(frozen=True)
class JudgeReply:
    model: str
    arguments: dict[str, Any]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float


@dataclass
class JudgeClient:
    """Where judges call models: the gateway's base URL (without `/v1`), a virtual key, the catalog."""

    gateway_url: str
    api_key: str
    catalog: ModelCatalog
    timeout: float = 60.0
    transport: httpx.AsyncBaseTransport | None = None  # tests may hand in an ASGI or mock transport
    _http: httpx.AsyncClient | None = None

    @classmethod
    def from_env(cls, catalog: ModelCatalog, environ: Mapping[str, str] | None = None) -> JudgeClient:
        env = os.environ if environ is None else environ
        url = env.get(GATEWAY_ENV, "http://127.0.0.1:8700")
        key = env.get(KEY_ENV) or env.get("FLEETPLANE_API_KEY") or ""
        return cls(url.rstrip("/"), key, catalog)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.gateway_url.rstrip("/"), timeout=self.timeout, transport=self.transport
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def verdict(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        schema: Mapping[str, Any],
        *,
        kind: str,
        max_tokens: int = 400,
    ) -> JudgeReply:
        body = {
            "model": model,
            "messages": list(messages),
            "temperature": 0,
            "max_tokens": max_tokens,
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": VERDICT_TOOL,
                        "description": "Record the verdict.",
                        "parameters": dict(schema),
                    },
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": VERDICT_TOOL}},
        }
        headers = {
            "authorization": f"Bearer {self.api_key}",
            "x-fleetplane-prompt-name": JUDGE_PROMPT_PREFIX + kind,
        }
        started = time.perf_counter()
        try:
            response = await self._client().post(
                "/v1/chat/completions", content=orjson.dumps(body), headers=headers
            )
        except httpx.HTTPError as exc:
            raise JudgeError(f"judge {model!r}: the gateway could not be reached: {exc}") from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        if response.status_code != 200:
            raise JudgeError(
                f"judge {model!r}: the gateway answered {response.status_code}: {response.text[:300]}"
            )
        try:
            payload = orjson.loads(response.content)
            message = payload["choices"][0]["message"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise JudgeError(f"judge {model!r}: not a chat completion: {response.text[:300]}") from exc
        usage = payload.get("usage") or {}
        input_tokens = int(usage.get("prompt_tokens") or 0)
        output_tokens = int(usage.get("completion_tokens") or 0)
        info = self.catalog.get(model)
        cost = info.cost(input_tokens, output_tokens) if info is not None else 0.0
        return JudgeReply(model, _arguments(model, message), input_tokens, output_tokens, cost, latency_ms)


def _arguments(model: str, message: Mapping[str, Any]) -> dict[str, Any]:
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        if function.get("name") == VERDICT_TOOL:
            return _json_object(model, function.get("arguments") or "{}")
    content = message.get("content")
    if isinstance(content, str) and content.strip():
        return _json_object(model, content)
    raise JudgeError(f"judge {model!r} answered without a verdict")


def _json_object(model: str, text: str) -> dict[str, Any]:
    start, end = text.find("{"), text.rfind("}")
    try:
        value = orjson.loads(text[start : end + 1]) if start >= 0 and end > start else None
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise JudgeError(f"judge {model!r}: the verdict is not a JSON object: {text[:200]!r}")
    return value
