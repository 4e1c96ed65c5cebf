"""`GenAISpan`: one GenAI or MCP operation in flight — a context manager for `with` and `async with` that
is also the handle for what is learnt during the call (response, usage, cost, chunks, content, errors). On
exit it sets `error.type` (the exception's class name, or what a setter said, e.g. `tool_error`), writes
content where the capture mode allows, emits the content event, records the metrics, and ends the span.

Attribute budget: OpenTelemetry keeps 128 attributes per span and, when full, evicts the *oldest*, which
would be the required ones. The helpers set at most ~40 of their own, and a caller's extra attributes are
capped at `MAX_EXTRA_ATTRIBUTES`; extras past the cap are dropped and counted in
`fleetplane.attributes.dropped`, so the required attributes can never be pushed out.

An exception's message and stack trace may quote the prompt (SDK errors often echo the request), so they are
recorded only when content capture is on, redacted like content; otherwise only the exception's type.
"""

from __future__ import annotations

import contextvars
import traceback
from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import Logger, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.content import (
    normalize_instructions,
    normalize_messages,
    scrub_secrets,
    scrub_value,
)
from fleetplane.telemetry.cost import TokenUsage
from fleetplane.telemetry.metric_records import Outcome

if TYPE_CHECKING:
    from fleetplane.telemetry.spans import GenAISpans


MAX_EXTRA_ATTRIBUTES = 64

# The agent whose invocation is in progress, so tool and model metrics can say whose they are.
current_agent: contextvars.ContextVar[str | None] = contextvars.ContextVar("fleetplane_agent", default=None)


def error_type_of(error: BaseException) -> str:
    """A low-cardinality `error.type`: the exception's class name."""
    return type(error).__qualname__


class GenAISpan:
    """One GenAI operation in flight; use with `with` or `async with`. `outcome` feeds the metrics."""

    def __init__(
        self,
        spans: GenAISpans,
        op: str,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, Any],
        extra: Mapping[str, Any] | None,
        parent: Context | None,
    ) -> None:
        self._spans = spans
        # Every value a caller hands over passes the secret scrubber, names and helper arguments too.
        self.name = scrub_secrets(name)
        self.kind = kind
        starting = {k: scrub_value(k, v) for k, v in attributes.items() if v is not None}
        self.outcome = Outcome(op, starting, server_side=kind is SpanKind.SERVER)
        self._extra = dict(extra or {})
        self._parent = parent
        self._span: trace.Span = trace.INVALID_SPAN
        self._token: object | None = None
        self._opened = False
        self._start_ns: int | None = None
        self._agent_token: contextvars.Token[str | None] | None = None
        self._started = 0.0
        self._last_chunk: float | None = None
        self._extras_set = 0
        self._extras_dropped = 0
        self._error_description: str | None = None
        self.response_id: str | None = None
        self.context_window: int | None = None
        self._content: dict[str, Any] = {}

    @property
    def span(self) -> trace.Span:
        return self._span

    @property
    def error_type(self) -> str | None:
        return self.outcome.error_type

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> GenAISpan:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(error=exc)

    def open(self, *, start_time_ns: int | None = None, attach: bool = True) -> GenAISpan:
        """Start the span. `attach=False` leaves the current context alone — for a span that starts and
        ends in different tasks, or is written after the fact with its real `start_time_ns`."""
        if self._opened:
            raise RuntimeError(f"span {self.name!r} is already open")
        self._opened = True
        starting = self.outcome.attributes
        self._span = self._spans.tracer.start_span(
            self.name, context=self._parent, kind=self.kind, attributes=starting, start_time=start_time_ns
        )
        self._start_ns = start_time_ns
        if attach:
            self._token = otel_context.attach(trace.set_span_in_context(self._span, self._parent))
            if self.outcome.operation == sc.Op.INVOKE_AGENT:
                self._agent_token = current_agent.set(starting.get(sc.GEN_AI_AGENT_NAME))
        self.set_attributes(self._extra)
        self._started = self._spans.clock.monotonic()
        return self

    def close(self, *, end_time_ns: int | None = None, error: BaseException | None = None) -> None:
        if end_time_ns is not None and self._start_ns is not None:
            self.outcome.duration_s = max(0, end_time_ns - self._start_ns) / 1e9
        else:
            self.outcome.duration_s = self._spans.clock.monotonic() - self._started
        try:
            if error is not None:
                self._record_exception(error)
            self._finish()
        finally:
            if self._agent_token is not None:
                current_agent.reset(self._agent_token)
            if self._token is not None:
                otel_context.detach(self._token)  # type: ignore[arg-type]
            self._span.end(end_time=end_time_ns)

    async def __aenter__(self) -> GenAISpan:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # --- setters --------------------------------------------------------------------------------

    def set(self, key: str, value: Any) -> None:
        """A caller's own attribute: scrubbed of secrets, within the extra-attribute budget."""
        if value is None:
            return
        if self._extras_set >= MAX_EXTRA_ATTRIBUTES:
            self._extras_dropped += 1
            return
        self._extras_set += 1
        self._span.set_attribute(key, scrub_value(key, value))

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Like `set` for each, handed to the span in one call (one pass through the SDK's lock)."""
        batch: dict[str, Any] = {}
        for key, value in attributes.items():
            if value is None:
                continue
            if self._extras_set >= MAX_EXTRA_ATTRIBUTES:
                self._extras_dropped += 1
                continue
            self._extras_set += 1
            batch[key] = scrub_value(key, value)
        if batch:
            self._span.set_attributes(batch)

    def _own(self, key: str, value: Any) -> None:
        if value is not None:
            self._span.set_attribute(key, scrub_secrets(value) if isinstance(value, str) else value)

    def _own_all(self, values: Mapping[str, Any]) -> None:
        """Several at once: one pass through the SDK's attribute lock instead of one per key."""
        present = {
            k: scrub_secrets(v) if isinstance(v, str) else v for k, v in values.items() if v is not None
        }
        if present:
            self._span.set_attributes(present)

    def set_response(
        self, *, id: str | None = None, model: str | None = None, finish_reasons: Sequence[str] | None = None
    ) -> None:
        self.response_id = id or self.response_id
        self.outcome.response_model = model or self.outcome.response_model
        if finish_reasons is not None:
            self.outcome.finish_reasons = [str(reason) for reason in finish_reasons]
        self._own_all(
            {
                sc.GEN_AI_RESPONSE_ID: id,
                sc.GEN_AI_RESPONSE_MODEL: model,
                sc.GEN_AI_RESPONSE_FINISH_REASONS: None
                if finish_reasons is None
                else self.outcome.finish_reasons,
            }
        )

    def set_usage(self, usage: TokenUsage) -> None:
        """Usage as the provider reported it; `input_tokens` must already include cached tokens."""
        self.outcome.usage = usage
        self._own_all(
            {
                sc.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
                sc.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
                # Zero cache and reasoning counts say nothing; leave them out.
                sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: usage.cache_read_tokens or None,
                self._spans.names.usage_cache_write_input_tokens: usage.cache_write_tokens or None,
                sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: usage.reasoning_tokens or None,
            }
        )

    def set_cost(self, usd: Decimal | float) -> None:
        self.outcome.cost_usd = usd
        self._own(sc.FP_COST_USD, float(usd))

    def set_tenant(
        self,
        *,
        organization: str | None = None,
        team: str | None = None,
        customer: str | None = None,
        user: str | None = None,
        key: str | None = None,
    ) -> None:
        """Who the call is for; `key` is a key's id or display prefix (a secret would be scrubbed)."""
        values = (organization, team, customer, user, key)
        given = {k: v for k, v in zip(sc.TENANT_ATTRIBUTES, values, strict=True) if v}
        self.outcome.tenant.update(given)
        self._own_all(given)

    def set_gateway(
        self,
        *,
        deployment: str | None = None,
        fallback_hops: int | None = None,
        cache_hit: bool | None = None,
        quota_decision: str | None = None,
        breaker_decision: str | None = None,
    ) -> None:
        """What the gateway's policies decided for this call."""
        self._own_all(
            {
                sc.FP_DEPLOYMENT: deployment,
                sc.FP_FALLBACK_HOPS: fallback_hops,
                sc.FP_CACHE_HIT: cache_hit,
                sc.FP_QUOTA_DECISION: quota_decision,
                sc.FP_BREAKER_DECISION: breaker_decision,
            }
        )

    def record_chunk(self) -> None:
        """A streamed chunk arrived: the first sets time to first chunk, later ones time per chunk."""
        now = self._spans.clock.monotonic()
        if self._last_chunk is None:
            self.outcome.time_to_first_chunk_s = now - self._started
        else:
            self.outcome.chunk_intervals_s.append(now - self._last_chunk)
        self._last_chunk = now

    def set_error(self, error_type: str, description: str | None = None) -> None:
        """The operation failed without an exception (an HTTP status, a JSON-RPC error, a tool's error).
        `description` becomes the span status message only when content capture is on: provider and
        tool error texts may quote the request."""
        self.outcome.error_type = error_type
        policy = self._spans.content
        self._error_description = policy.clean_text(description) if description and policy.mode.any else None

    def tool_error(self) -> None:
        """The tool answered with an error result (MCP `isError`): counts against tool success."""
        self.set_error(sc.ERROR_TOOL)

    def jsonrpc_error(self, code: int, message: str | None = None) -> None:
        self._own(sc.RPC_RESPONSE_STATUS_CODE, str(code))
        self.set_error(str(code), message)

    # --- content (dropped at once unless the capture mode keeps it) ---------------------------

    def record_input(self, messages: Sequence[Mapping[str, Any]], system_instructions: Any = None) -> None:
        if not self._spans.content.mode.any:
            return
        self._content[sc.GEN_AI_INPUT_MESSAGES] = normalize_messages(messages)
        if system_instructions:
            self._content[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = normalize_instructions(system_instructions)

    def record_output(self, messages: Sequence[Mapping[str, Any]]) -> None:
        if self._spans.content.mode.any:
            self._content[sc.GEN_AI_OUTPUT_MESSAGES] = normalize_messages(messages)

    def record_tool_arguments(self, arguments: Any) -> None:
        if self._spans.content.mode.on_span:
            self._content[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = arguments

    def record_tool_result(self, result: Any, *, is_error: bool = False) -> None:
        if is_error:
            self.tool_error()
        if self._spans.content.mode.on_span:
            self._content[sc.GEN_AI_TOOL_CALL_RESULT] = result

    # --- exit -----------------------------------------------------------------------------------

    def _record_exception(self, exc: BaseException) -> None:
        if self.outcome.error_type is None:
            self.outcome.error_type = error_type_of(exc)
        event: dict[str, Any] = {sc.EXCEPTION_TYPE: error_type_of(exc)}
        policy = self._spans.content
        if policy.mode.any:
            message = policy.clean_text(str(exc))
            stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            event[sc.EXCEPTION_MESSAGE] = message
            event[sc.EXCEPTION_STACKTRACE] = policy.clean_text(stack)
            self._error_description = message
        self._span.add_event("exception", event)

    def _finish(self) -> None:
        outcome = self.outcome
        if outcome.error_type is not None:
            self._span.set_status(Status(StatusCode.ERROR, self._error_description or outcome.error_type))
        if self.context_window and outcome.usage is not None and outcome.context_utilization is None:
            outcome.context_utilization = outcome.usage.input_tokens / self.context_window
        self._own_all(
            {
                sc.ERROR_TYPE: outcome.error_type,
                sc.FP_CONTEXT_UTILIZATION: outcome.context_utilization,
                sc.FP_ATTRIBUTES_DROPPED: self._extras_dropped or None,
            }
        )
        self._write_content()
        if self._spans.metrics is not None:
            self._spans.metrics.record_outcome(outcome)

    def _write_content(self) -> None:
        if not self._content:
            return
        policy = self._spans.content
        if policy.mode.on_span:
            for key, value in self._content.items():
                self._own(key, policy.to_json(value))
        inference = self.outcome.operation in sc.INFERENCE_OPERATIONS | {sc.Op.EMBEDDINGS}
        events = self._spans.events
        if policy.mode.on_event and inference and events is not None:
            self._emit_details(events, {k: policy.clean(v) for k, v in self._content.items()})

    def _emit_details(self, events: Logger, content: Mapping[str, Any]) -> None:
        """The `gen_ai.client.inference.operation.details` event: the call's attributes and content."""
        outcome = self.outcome
        attributes = {k: v for k, v in outcome.attributes.items() if k.startswith(("gen_ai.", "server."))}
        usage = outcome.usage
        known = {
            sc.GEN_AI_RESPONSE_ID: self.response_id,
            sc.GEN_AI_RESPONSE_MODEL: outcome.response_model,
            sc.GEN_AI_RESPONSE_FINISH_REASONS: outcome.finish_reasons or None,
            sc.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens if usage else None,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens if usage else None,
            sc.ERROR_TYPE: outcome.error_type,
        }
        attributes.update({k: v for k, v in known.items() if v is not None})
        attributes.update(content)
        events.emit(
            event_name=sc.EVENT_INFERENCE_DETAILS,
            severity_number=SeverityNumber.DEBUG,
            context=trace.set_span_in_context(self._span),
            attributes=attributes,
        )
