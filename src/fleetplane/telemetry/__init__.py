"""Telemetry: the one place fleetplane emits OpenTelemetry, plus token counting, cost and the span store.

What this wing owns:
- `semconv`: every gen_ai.* / mcp.* / fleetplane.* name emitted (v1.41.0 conventions by default, the newest
  with `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`), metric bucket boundaries included.
- `setup`: `Telemetry`, a process's providers (traces, metrics, logs/events), bounded batch processors that
  drop and count instead of blocking, OTLP/HTTP export, in-process `SpanSink`/`LogSink`s.
- `spans`: correctly named, kinded and attributed GenAI/MCP spans; `metrics`: `GenAIMetrics`.
- `content`: content capture modes, redaction of personal data, scrubbing of secrets.
- `propagation`: W3C trace context over HTTP headers and MCP `params._meta`.
- `agent`: the agent-side SDK re-exported here (`configure`, `agent_span`, `tool_span`, `@agent`, `@tool`,
  `trace_headers`, httpx hooks).
- `tokens`, `cost`: offline token counts and prices.
- The built-in backend: the OTLP receiver and forwarder (`receiver`, `forwarder`, `otlp_decode`), the span
  store with its records, in-process sink and queries (`records`, `spanstore`, `sink`, `*query`), the
  Prometheus page (`prometheus`) and drift signals (`drift`).

Ground floor: may import `fleetplane.store` (span store) and `fleetplane.state.clock`, nothing above.
Importing this package loads only the OpenTelemetry API; the SDK loads with `setup` (or `configure()`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetplane.telemetry.agent import (
    agent,
    agent_span,
    chat_span,
    configure,
    httpx_async_request_hook,
    httpx_request_hook,
    instrument_httpx,
    retrieval_span,
    shutdown,
    tool,
    tool_span,
    trace_headers,
    workflow_span,
)
from fleetplane.telemetry.content import CaptureMode, ContentPolicy
from fleetplane.telemetry.spans import GenAISpan, GenAISpans

if TYPE_CHECKING:
    from fleetplane.telemetry.setup import InMemorySink, LogSink, OtlpHttp, QueueLimits, SpanSink, Telemetry

_FROM_SETUP = frozenset({"InMemorySink", "LogSink", "OtlpHttp", "QueueLimits", "SpanSink", "Telemetry"})


def __getattr__(name: str) -> Any:
    # The SDK-backed names load on first use, so `fleetplane.telemetry.tokens` users do not pay for them.
    if name in _FROM_SETUP:
        from fleetplane.telemetry import setup

        return getattr(setup, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CaptureMode",
    "ContentPolicy",
    "GenAISpan",
    "GenAISpans",
    "InMemorySink",
    "LogSink",
    "OtlpHttp",
    "QueueLimits",
    "SpanSink",
    "Telemetry",
    "agent",
    "agent_span",
    "chat_span",
    "configure",
    "httpx_async_request_hook",
    "httpx_request_hook",
    "instrument_httpx",
    "retrieval_span",
    "shutdown",
    "tool",
    "tool_span",
    "trace_headers",
    "workflow_span",
]
