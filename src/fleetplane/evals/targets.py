"""What a suite runs against. A target is an async callable `(case, epoch) -> Answer`:

- `ChatTarget`: a model group through the gateway's OpenAI chat API (`POST /v1/chat/completions`), with
  usage from the response, the call's wall time, and cost from usage x the Model manifest's price;
- `AgentTarget`: `POST /agents/{name}/invoke` on the server (A2A-style message parts);
- `CallableTarget`: anything else (skill versions, pipelines). The top floor supplies
  `async def run(input: Any) -> Any` for `skill:NAME@VERSION` or `pipeline:NAME`; a returned string is
  the answer text, any other value is the structured answer (its JSON is the text); an exception is a
  failed case. An `Answer` may be returned directly to report usage, cost or a trace id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from fleetplane.evals.cases import Case
from fleetplane.evals.results import Answer


class Target(Protocol):
    @property
    def name(self) -> str: ...

    async def __call__(self, case: Case, epoch: int) -> Answer: ...


TargetFunction = Callable[[Any], Awaitable[Any]]
_FAILED_STATES = ("failed", "rejected", "canceled")


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _trace_id(headers: Mapping[str, str]) -> str | None:
    parts = headers.get("traceparent", "").split("-")
    return parts[1] if len(parts) == 4 else None


def chat_messages(case_input: Any, system: str | None) -> list[dict[str, Any]]:
    """A case's input as chat messages: a string is one user message; a list is messages as given; a
    mapping with `messages` uses them, any other mapping is sent as JSON text."""
    if isinstance(case_input, list):
        messages = list(case_input)
    elif isinstance(case_input, dict) and isinstance(case_input.get("messages"), list):
        messages = list(case_input["messages"])
    else:
        messages = [{"role": "user", "content": _text_of(case_input)}]
    if system and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return messages


@dataclass(frozen=True)
class Price:
    input_per_million: float
    output_per_million: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / 1e6


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return f"HTTP {response.status_code}: {message or response.text[:300]}"


@dataclass
class ChatTarget:
    client: httpx.AsyncClient  # base_url: the server (`fleetplane up`), auth headers set
    model: str
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    price: Price | None = None  # the model group's
    deployment_prices: Mapping[str, Price] = field(default_factory=dict)  # "provider/model" -> its own price

    @property
    def name(self) -> str:
        return f"model:{self.model}"

    def cost(self, deployment: str | None, input_tokens: int, output_tokens: int) -> float | None:
        """What the gateway charges: the serving deployment's price when it has one, else the group's."""
        price = self.deployment_prices.get(deployment or "", self.price)
        return price.cost(input_tokens, output_tokens) if price else None

    async def __call__(self, case: Case, epoch: int) -> Answer:
        body: dict[str, Any] = {"model": self.model, "messages": chat_messages(case.input, self.system)}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        # Each epoch is its own sample: a seed per epoch keeps reruns reproducible where upstreams honour it.
        body["seed"] = epoch
        started = time.perf_counter()
        try:
            response = await self.client.post("/v1/chat/completions", json=body)
        except httpx.HTTPError as exc:
            return Answer("", error=f"{type(exc).__name__}: {exc}", model=self.model)
        latency = (time.perf_counter() - started) * 1000.0
        if response.status_code != 200:
            return Answer("", error=_error_text(response), model=self.model, latency_ms=latency)
        data = response.json()
        choice = (data.get("choices") or [{}])[0]
        usage = data.get("usage") or {}
        tokens_in, tokens_out = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        deployment = response.headers.get("x-fleetplane-deployment")
        return Answer(
            output=(choice.get("message") or {}).get("content") or "",
            model=self.model,  # the group: judges' family rule and reports speak of model groups
            deployment=deployment,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            latency_ms=latency,
            cost_usd=self.cost(deployment, tokens_in, tokens_out),
            finish_reason=choice.get("finish_reason"),
            trace_id=_trace_id(response.headers),
        )


def _parts(body: Any) -> list[Any] | None:
    """The answer's parts, in A2A's shapes: a task's artifacts, a message, or a task's status message."""
    if not isinstance(body, dict):
        return None
    artifacts = body.get("artifacts")
    if isinstance(artifacts, list) and artifacts:
        return [p for a in artifacts if isinstance(a, dict) for p in (a.get("parts") or [])]
    for holder in (body, body.get("status")):
        message = holder.get("message") if isinstance(holder, dict) else None
        if isinstance(message, dict) and isinstance(message.get("parts"), list):
            return list(message["parts"])
    return None


def agent_output(body: Any) -> tuple[str, Any]:
    """An agent's answer: the text of its text parts, or its (first) data part as the structured value."""
    parts = _parts(body)
    if parts is not None:
        data = [p.get("data") for p in parts if isinstance(p, dict) and p.get("kind") == "data"]
        texts = [p.get("text", "") for p in parts if isinstance(p, dict) and p.get("kind") == "text"]
        if data and not texts:
            return _text_of(data[0]), data[0]
        return "\n".join(texts), data[0] if data else None
    if isinstance(body, dict) and isinstance(body.get("output"), str):
        return body["output"], None
    return _text_of(body), body


@dataclass
class AgentTarget:
    client: httpx.AsyncClient
    agent: str

    @property
    def name(self) -> str:
        return f"agent:{self.agent}"

    async def __call__(self, case: Case, epoch: int) -> Answer:
        if isinstance(case.input, dict) and "message" in case.input:
            body = case.input
        else:
            part = (
                {"kind": "text", "text": case.input}
                if isinstance(case.input, str)
                else {"kind": "data", "data": case.input}
            )
            body = {"message": {"role": "user", "parts": [part]}}
        started = time.perf_counter()
        try:
            response = await self.client.post(f"/agents/{self.agent}/invoke", json=body)
        except httpx.HTTPError as exc:
            return Answer("", error=f"{type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000.0
        trace = _trace_id(response.headers)
        try:
            answer: Any = response.json()
        except ValueError:
            answer = None
        status = answer.get("status") if isinstance(answer, dict) else None
        state = status.get("state") if isinstance(status, dict) else None
        if state is None and (response.status_code != 200 or answer is None):  # not an agent's task
            return Answer("", error=_error_text(response), latency_ms=latency, trace_id=trace)
        # A failed task comes with a 5xx (docs/runtime.md): its message says why, so it is reported below.
        text, structured = agent_output(answer)
        if state in _FAILED_STATES or response.status_code != 200:  # a task that ended badly fails its case
            return Answer(
                text,
                error=f"the agent's task ended {state}: {text[:200]}",
                latency_ms=latency,
                trace_id=trace,
            )
        return Answer(text, structured=structured, latency_ms=latency, trace_id=trace)


@dataclass
class CallableTarget:
    target: str  # "skill:summarize@1.2.0", "pipeline:triage"
    run: TargetFunction

    @property
    def name(self) -> str:
        return self.target

    async def __call__(self, case: Case, epoch: int) -> Answer:
        started = time.perf_counter()
        try:
            value = await self.run(case.input)
        except Exception as exc:  # a failing skill fails its case; the run goes on
            return Answer("", error=f"{type(exc).__name__}: {exc}")
        if isinstance(value, Answer):
            return value
        latency = (time.perf_counter() - started) * 1000.0
        structured = None if isinstance(value, str) else value
        return Answer(_text_of(value), structured=structured, latency_ms=latency)
