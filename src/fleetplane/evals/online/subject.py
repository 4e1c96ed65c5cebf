"""What a production span says about its answer, read back from the span store: the input messages and
output text (when content capture is on: span attributes or the inference details event), the finish
reason and error, as the `Sample` scorers read and the subject reviewers see."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from fleetplane.evals.scoring import Sample, Usage
from fleetplane.telemetry.usagequery import SampledSpan

INPUT = "gen_ai.input.messages"
OUTPUT = "gen_ai.output.messages"


@dataclass(frozen=True)
class Subject:
    input: list[dict[str, Any]]  # chat messages as {role, content}
    output: str
    finish_reason: str | None
    error_type: str | None
    content_captured: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "finish_reason": self.finish_reason,
            "error_type": self.error_type,
            "content_captured": self.content_captured,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Subject:
        return cls(
            list(data.get("input") or []),
            str(data.get("output") or ""),
            data.get("finish_reason"),
            data.get("error_type"),
            bool(data.get("content_captured")),
        )

    def input_digest(self) -> str | None:
        if not self.input:
            return None
        return hashlib.sha256(orjson.dumps(self.input, option=orjson.OPT_SORT_KEYS)).hexdigest()


def subject_of(item: SampledSpan) -> Subject:
    span = item.span
    found: dict[str, Any] = {}
    sources: list[Mapping[str, Any]] = [span.attributes, *(e.attributes for e in item.events)]
    for attributes in sources:
        for key in (INPUT, OUTPUT):
            if key not in found and key in attributes:
                found[key] = _decode(attributes[key])
    finish = span.finish_reasons[0] if span.finish_reasons else None
    return Subject(
        input=[_plain(m) for m in found.get(INPUT) or [] if isinstance(m, Mapping)],
        output="\n".join(_plain(m)["content"] for m in found.get(OUTPUT) or [] if isinstance(m, Mapping)),
        finish_reason=finish,
        error_type=span.error_type,
        content_captured=INPUT in found or OUTPUT in found,
    )


def sample_of(item: SampledSpan, subject: Subject) -> Sample:
    """The span as a scorer's `Sample` (no expected answer: production has none)."""
    span = item.span
    usage = None
    if span.input_tokens is not None or span.output_tokens is not None:
        usage = Usage(span.input_tokens or 0, span.output_tokens or 0)
    return Sample(
        case_id=f"{span.trace_id}/{span.span_id}",
        input=subject.input,
        output=subject.output,
        metadata={"agent": span.agent, "team": span.team, "prompt_version": span.prompt_version},
        usage=usage,
        latency_ms=span.duration_ns / 1e6,
        cost_usd=float(span.cost_usd) if span.cost_usd is not None else None,
        model=span.request_model or span.response_model,
        target=f"model:{span.request_model}" if span.request_model else "",
        finish_reason=subject.finish_reason,
        trace_id=span.trace_id,
    )


def _decode(value: Any) -> Any:
    if isinstance(value, str):  # on the span, content is JSON text
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def _plain(message: Mapping[str, Any]) -> dict[str, Any]:
    """`{role, parts: [...]}` (the conventions' shape) back to `{role, content}` text."""
    if "parts" not in message:
        return {"role": str(message.get("role", "")), "content": str(message.get("content") or "")}
    texts = [
        str(p.get("content", ""))
        for p in message.get("parts") or []
        if isinstance(p, Mapping) and p.get("type") == "text"
    ]
    calls = [
        f"{p.get('name')}({p.get('arguments')})"
        for p in message.get("parts") or []
        if isinstance(p, Mapping) and p.get("type") == "tool_call"
    ]
    return {"role": str(message.get("role", "")), "content": " ".join(texts + calls)}
