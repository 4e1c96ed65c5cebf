"""How the OpenAI API looks on the wire: error bodies, rate-limit headers, completion bodies and chunks.

Error wording, types and codes follow OpenAI's own, so SDKs and gateways see what they would see from the
real API; `openai_api` decides what to answer, this module only writes it.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import orjson

from fleetplane.sim.completion import ChatRequest, Choice
from fleetplane.sim.engine import Header, SimState
from fleetplane.sim.errors import SimError
from fleetplane.sim.generate import random_id
from fleetplane.sim.ratelimit import Denial, ModelLimiter, go_duration
from fleetplane.sim.stream import StreamScript

_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "invalid_request_error",
    "permission": "permission_error",
    "not_found": "invalid_request_error",
    "too_large": "invalid_request_error",
    "overloaded": "server_error",
    "server": "server_error",
}
_FINISH = {"end": "stop", "stop_sequence": "stop", "length": "length", "tool_call": "tool_calls"}
FINGERPRINT = "fp_fleetplane_sim"


def sse(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class OpenAIDialect:
    def __init__(self, state: SimState, include_usage: bool = False) -> None:
        self.state = state
        self.include_usage = include_usage

    def render_error(self, err: SimError) -> tuple[int, dict[str, Any]]:
        if err.kind == "rate_limit":
            # OpenAI's 429 names the exhausted limit in `type` ("requests" or "tokens").
            kind_type = err.limit or "requests"
            code: str | None = err.code or "rate_limit_exceeded"
        else:
            kind_type, code = _TYPES[err.kind], err.code
        body = {"error": {"message": err.message, "type": kind_type, "param": err.param, "code": code}}
        return err.status, body

    def limit_headers(self, limiter: ModelLimiter) -> list[Header]:
        return limiter.openai_headers()

    def rate_limited(self, model: str, denial: Denial) -> SimError:
        label = "requests per min (RPM)" if denial.limit == "requests" else "tokens per min (TPM)"
        limit = "requests" if denial.limit == "requests" else "tokens"
        if denial.too_large:
            message = (
                f"Request too large for {model} in organization org-sim on {label}: Limit {denial.capacity}, "
                f"Requested {denial.requested}. The input or output tokens must be reduced in order to run "
                "successfully."
            )
        else:
            message = (
                f"Rate limit reached for {model} in organization org-sim on {label}: "
                f"Limit {denial.capacity}, Requested {denial.requested}. "
                f"Please try again in {go_duration(denial.retry_after_s)}."
            )
        return SimError(429, "rate_limit", message, retry_after=denial.retry_after, limit=limit)

    def overloaded(self, retry_after: int | None) -> SimError:
        return SimError(
            503, "overloaded", "The server is overloaded or not ready yet.", retry_after=retry_after
        )

    def tool_id(self, rng: random.Random) -> str:
        return "call_" + random_id(rng, 24)

    def _usage(self, prompt: int, completion: int) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def body(self, chat: ChatRequest, choices: list[Choice]) -> dict[str, Any]:
        rendered = []
        for index, choice in enumerate(choices):
            message: dict[str, Any] = {"role": "assistant", "content": choice.text, "refusal": None}
            if choice.tool_call is not None:
                call = choice.tool_call
                message["content"] = None
                message["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                ]
            message["annotations"] = []
            rendered.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _FINISH[choice.finish],
                }
            )
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(self.state.clock.now()),
            "model": chat.name,
            "choices": rendered,
            "usage": self._usage(chat.input_tokens, sum(c.output_tokens for c in choices)),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }

    def script(self, chat: ChatRequest, choices: list[Choice]) -> StreamScript:
        envelope: dict[str, Any] = {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion.chunk",
            "created": int(self.state.clock.now()),
            "model": chat.name,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
            "choices": None,
        }
        if self.include_usage:
            envelope["usage"] = None

        def event(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
            envelope["choices"] = [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ]
            return sse(envelope)

        script = StreamScript()
        for index, choice in enumerate(choices):
            call = choice.tool_call
            if call is None:
                script.head.append(event(index, {"role": "assistant", "content": "", "refusal": None}))
            else:
                start = {
                    "index": 0,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                script.head.append(
                    event(index, {"role": "assistant", "content": None, "tool_calls": [start]})
                )
        steps = max((len(choice.pieces) for choice in choices), default=0)
        positions = [0] * len(choices)
        for step in range(steps):
            for index, choice in enumerate(choices):
                if step >= len(choice.pieces):
                    continue
                piece = choice.pieces[step]
                if choice.tool_call is None:
                    delta: dict[str, Any] = {"content": piece}
                else:
                    delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                script.add(event(index, delta), choice.weights[step], positions[index])
                positions[index] += choice.weights[step]
        for index, choice in enumerate(choices):
            script.tail.append(event(index, {}, _FINISH[choice.finish]))
        if self.include_usage:
            envelope["choices"] = []
            envelope["usage"] = self._usage(chat.input_tokens, sum(c.output_tokens for c in choices))
            script.tail.append(sse(envelope))
        script.tail.append(b"data: [DONE]\n\n")
        return script
