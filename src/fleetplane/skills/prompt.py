"""Prompt skills: a template rendered with the input and sent to the gateway's OpenAI-compatible API.

The model is a model group of the gateway, never a provider: the call is governed (quotas, breakers,
fallbacks), traced and charged like any other. The request carries the run's trace context and names
the skill as the prompt (`x-fleetplane-prompt-name` / `-version`), so the gateway's span says which
skill version asked. When the output schema is an object the answer must be JSON (asked for with
`response_format: json_schema`; a fenced ```json block is accepted too); otherwise the answer is text
and the output is `{"text": ...}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from fleetplane.manifests.expressions import ExprError
from fleetplane.manifests.templates import compile_block_template
from fleetplane.skills.contract import Contract
from fleetplane.skills.errors import SkillError
from fleetplane.skills.schema import is_object_schema
from fleetplane.skills.spec import PromptEntry

_FENCED = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.S)


def chat_url(gateway_url: str) -> str:
    """The chat completions URL under the gateway's OpenAI base URL (`http://host:8700` or `.../v1`)."""
    base = gateway_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


def build_request(contract: Contract, entry: PromptEntry, input: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI chat completions body for one invocation; `SkillError` invalid_input if the template
    needs something the input lacks."""
    label = f"skill {contract.name}@{contract.version}"
    context = {"input": input}
    try:
        user = compile_block_template(entry.template).render(context)
        system = compile_block_template(entry.system).render(context) if entry.system else None
    except ExprError as exc:
        raise SkillError("invalid_input", f"{label}: the prompt template at {exc}") from None
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": user})
    body: dict[str, Any] = {"model": entry.model, "messages": messages}
    if is_object_schema(contract.output_schema):
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(contract.name), "schema": contract.output_schema},
        }
    return body


def _schema_name(name: str) -> str:
    # OpenAI accepts [a-zA-Z0-9_-]{1,64}: a skill's name always fits.
    return name[:64]


def headers(contract: Contract, ctx: Any) -> dict[str, str]:
    out = {
        "content-type": "application/json",
        "x-fleetplane-prompt-name": contract.name,
        "x-fleetplane-prompt-version": contract.version,
    }
    if ctx.gateway_key:
        out["authorization"] = f"Bearer {ctx.gateway_key}"
    if ctx.traceparent:
        out["traceparent"] = ctx.traceparent
    return out


async def call(contract: Contract, entry: PromptEntry, input: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
    """One attempt: render, ask the gateway, parse. Failures map to SkillError kinds."""
    label = f"skill {contract.name}@{contract.version}"
    if not ctx.gateway_url:
        raise SkillError("failed", f"{label} is a prompt skill and the context has no gateway_url")
    body = build_request(contract, entry, input)
    try:
        async with httpx.AsyncClient(timeout=contract.timeout) as client:
            response = await client.post(chat_url(ctx.gateway_url), json=body, headers=headers(contract, ctx))
    except httpx.TimeoutException:
        raise SkillError(
            "timeout", f"{label}: the gateway did not answer within {contract.timeout:g}s"
        ) from None
    except httpx.HTTPError as exc:
        raise SkillError(
            "transient", f"{label}: cannot reach the gateway at {ctx.gateway_url}: {exc}"
        ) from None
    if response.status_code == 429 or response.status_code >= 500:
        raise SkillError(
            "transient", f"{label}: the gateway answered {response.status_code}: {_reason(response)}"
        )
    if response.status_code >= 400:
        raise SkillError("failed", f"{label}: the gateway refused the request ({response.status_code}): "
                         f"{_reason(response)}")  # fmt: skip
    try:
        content = response.json()["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError):
        raise SkillError("transient", f"{label}: the gateway's answer is not a chat completion") from None
    return parse_answer(contract, content)


def parse_answer(contract: Contract, content: str) -> dict[str, Any]:
    if not is_object_schema(contract.output_schema):
        return {"text": content}
    text = content
    fenced = _FENCED.match(content)
    if fenced:
        text = fenced.group(1)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        shown = content if len(content) <= 80 else content[:77] + "..."
        raise SkillError(
            "invalid_output",
            f"skill {contract.name}@{contract.version}: the model's answer is not JSON: {shown!r}",
        ) from None
    if not isinstance(value, dict):
        raise SkillError(
            "invalid_output",
            f"skill {contract.name}@{contract.version}: the model answered JSON that is not an object",
        )
    return value


def _reason(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or response.text)[:200]
    except ValueError:
        return response.text[:200]
