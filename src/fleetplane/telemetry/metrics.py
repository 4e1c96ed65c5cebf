"""GenAI, MCP and fleetplane metrics, with the conventions' bucket boundaries, behind one recording object.

Callers describe what happened (`CallRecord` for a finished model call, or one method per other event);
`GenAIMetrics` knows which instruments that feeds under the selected name set. Histograms get their
boundaries twice: as the API's advisory (honoured by any SDK a library user configured) and as Views from
`views()` (which win on the MeterProvider fleetplane builds).

Metric attributes are kept low-cardinality (operation, provider, models, server, error type, agent, and the
organization/team of a tenant); users, customers and keys are on spans only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import Counter, Histogram, Meter

from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.cost import TokenUsage
from fleetplane.telemetry.metric_records import (
    MAX_BOUND,
    CallAttributes,
    CallRecord,
    Outcome,
    known_attrs,
    tenant_attrs,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.view import View

# Finish reasons meaning "stopped at the output token limit", across providers' spellings.
LENGTH_FINISH_REASONS = frozenset({"length", "max_tokens", "max_output_tokens"})
MCP_OPERATION = "mcp"  # an MCP span's label here (its gen_ai.operation.name depends on the method)


def views(names: sc.SemconvNames) -> list[View]:
    """One View per histogram of the name set, with its explicit bucket boundaries."""
    # The SDK is imported here, not above: agents that only open spans need just the API at import.
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    return [
        View(instrument_name=spec.name, aggregation=ExplicitBucketHistogramAggregation(spec.buckets))
        for spec in names.metric_specs()
        if spec.buckets is not None
    ]


class GenAIMetrics:
    """Every instrument fleetplane records, created once per meter and name set."""

    def __init__(self, meter: Meter, names: sc.SemconvNames) -> None:
        self.names = names
        self._instruments: dict[str, Histogram | Counter] = {}
        # Attribute sets per (operation, provider, models, server, error) and per owner, built once and
        # reused for every call like it: the gateway sees a handful of such keys, so building the same
        # dicts per request was pure overhead. The SDK copies what it keeps, and nothing here mutates a
        # cached dict. Bounded: a flood of distinct keys only empties the cache.
        self._call_sets: dict[tuple[Any, ...], CallAttributes] = {}
        self._owner_sets: dict[tuple[Any, ...], dict[str, Any]] = {}
        for spec in names.metric_specs():
            if spec.instrument == "histogram":
                self._instruments[spec.name] = meter.create_histogram(
                    spec.name,
                    unit=spec.unit,
                    description=spec.description,
                    explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
                )
            else:
                self._instruments[spec.name] = meter.create_counter(
                    spec.name, unit=spec.unit, description=spec.description
                )
        # The bound `record`/`add` of each instrument, so a recording is one dict lookup and one call.
        self._sinks: dict[str, Callable[[float, Mapping[str, Any]], None]] = {
            name: (inst.record if isinstance(inst, Histogram) else inst.add)
            for name, inst in self._instruments.items()
        }

    def _record(self, spec: sc.MetricSpec | None, value: float, attributes: Mapping[str, Any]) -> None:
        if spec is not None:
            self._sinks[spec.name](value, attributes)

    def record_outcome(self, outcome: Outcome) -> None:
        """Feed every instrument a finished GenAI or MCP operation concerns."""
        attr = outcome.attributes.get
        op, error, duration = outcome.operation, outcome.error_type, outcome.duration_s
        if op in sc.INFERENCE_OPERATIONS or op == sc.Op.EMBEDDINGS:
            self.record_call(
                CallRecord(
                    operation=op,
                    provider=attr(sc.GEN_AI_PROVIDER_NAME) or "",
                    duration_s=duration,
                    request_model=attr(sc.GEN_AI_REQUEST_MODEL),
                    response_model=outcome.response_model,
                    server_address=attr(sc.SERVER_ADDRESS),
                    server_port=attr(sc.SERVER_PORT),
                    usage=outcome.usage,
                    error_type=error,
                    time_to_first_chunk_s=outcome.time_to_first_chunk_s,
                    chunk_intervals_s=outcome.chunk_intervals_s,
                    cost_usd=outcome.cost_usd,
                    context_utilization=outcome.context_utilization,
                    finish_reasons=outcome.finish_reasons,
                    agent_name=attr(sc.GEN_AI_AGENT_NAME),
                    tenant=outcome.tenant,
                )
            )
        elif op == sc.Op.EXECUTE_TOOL:
            self.record_tool(
                attr(sc.GEN_AI_TOOL_NAME) or "",
                duration,
                error_type=error,
                tool_type=attr(sc.GEN_AI_TOOL_TYPE),
                agent_name=attr(sc.GEN_AI_AGENT_NAME),
            )
        elif op == sc.Op.INVOKE_AGENT:
            self.record_agent(
                attr(sc.GEN_AI_AGENT_NAME), duration, error_type=error, model=attr(sc.GEN_AI_REQUEST_MODEL)
            )
        elif op == sc.Op.INVOKE_WORKFLOW:
            self.record_workflow(attr(sc.GEN_AI_WORKFLOW_NAME), duration, error_type=error)
        elif op == MCP_OPERATION:
            self.record_mcp(
                server_side=outcome.server_side,
                method=attr(sc.MCP_METHOD_NAME) or "",
                duration_s=duration,
                error_type=error,
                tool_name=attr(sc.GEN_AI_TOOL_NAME),
                protocol_version=attr(sc.MCP_PROTOCOL_VERSION),
                transport=attr(sc.NETWORK_TRANSPORT),
            )
            tool = attr(sc.GEN_AI_TOOL_NAME)
            if outcome.server_side and tool:
                # An MCP tool runs on the server; its client has an execute_tool span of its own.
                self.record_tool(tool, duration, error_type=error)

    # --- model calls ------------------------------------------------------------------------------

    def _call_attributes(self, call: CallRecord) -> CallAttributes:
        key = (
            call.operation,
            call.provider,
            call.request_model,
            call.response_model,
            call.server_address,
            call.server_port,
            call.error_type,
        )
        bound = self._call_sets.get(key)
        if bound is None:
            if len(self._call_sets) >= MAX_BOUND:
                self._call_sets.clear()
            bound = self._call_sets[key] = CallAttributes.build(call)
        return bound

    def record_call(self, call: CallRecord) -> None:
        bound = self._call_attributes(call)
        base, with_error = bound.base, bound.with_error
        inference = call.operation in sc.INFERENCE_OPERATIONS
        duration = self.names.inference_duration if inference else self.names.operation_duration
        self._record(duration, call.duration_s, with_error)
        self._record_tokens(call, bound, inference)
        if call.time_to_first_chunk_s is not None:
            self._record(self.names.time_to_first_chunk, call.time_to_first_chunk_s, base)
        for interval in call.chunk_intervals_s:
            self._record(self.names.time_per_output_chunk, interval, base)
        self._record_fleetplane(call)

    def _record_tokens(self, call: CallRecord, bound: CallAttributes, inference: bool) -> None:
        usage = call.usage
        if not self.names.latest:
            # v1.41.0: report only what is known; never a made-up zero.
            if usage is None or self.names.token_usage is None:
                return
            self._record(self.names.token_usage, usage.input_tokens, bound.input_tokens)
            if call.operation != sc.Op.EMBEDDINGS:
                self._record(self.names.token_usage, usage.output_tokens, bound.output_tokens)
            return
        if not inference:
            return
        # Newest conventions: every inference call counts, failed ones included, 0 when usage is unknown.
        usage = usage or TokenUsage()
        counts = {
            sc.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: usage.cache_read_tokens,
            self.names.usage_cache_write_input_tokens: usage.cache_write_tokens,
            sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: usage.reasoning_tokens,
        }
        for attribute, spec in self.names.usage_counters.items():
            self._record(spec, counts[attribute], bound.modal)
        for attribute, spec in self.names.operation_token_histograms.items():
            self._record(spec, counts[attribute], bound.with_error)

    def _owner(self, call: CallRecord) -> dict[str, Any]:
        tenant = call.tenant
        key = (
            call.provider,
            call.request_model,
            call.agent_name,
            *(tenant.get(name) for name in sc.TENANT_METRIC_ATTRIBUTES),
        )
        owner = self._owner_sets.get(key)
        if owner is None:
            if len(self._owner_sets) >= MAX_BOUND:
                self._owner_sets.clear()
            owner = known_attrs(
                **{
                    sc.GEN_AI_PROVIDER_NAME: call.provider,
                    sc.GEN_AI_REQUEST_MODEL: call.request_model,
                    sc.GEN_AI_AGENT_NAME: call.agent_name,
                }
            )
            owner.update(tenant_attrs(tenant))
            self._owner_sets[key] = owner
        return owner

    def _record_fleetplane(self, call: CallRecord) -> None:
        owner = self._owner(call)
        if call.cost_usd is not None and call.cost_usd > 0:
            self._record(sc.FP_COST_METRIC, float(call.cost_usd), owner)
        if call.context_utilization is not None:
            self._record(sc.FP_CONTEXT_METRIC, call.context_utilization, owner)
        if any(reason.lower() in LENGTH_FINISH_REASONS for reason in call.finish_reasons):
            self._record(sc.FP_FINISH_LENGTH, 1, owner)

    def record_server(
        self,
        *,
        operation: str,
        provider: str,
        request_model: str | None = None,
        response_model: str | None = None,
        request_duration_s: float | None = None,
        time_to_first_token_s: float | None = None,
        time_per_output_token_s: float | None = None,
        error_type: str | None = None,
    ) -> None:
        """Model-server timings, as the gateway sees the requests it serves."""
        base = known_attrs(
            **{
                sc.GEN_AI_OPERATION_NAME: operation,
                sc.GEN_AI_PROVIDER_NAME: provider,
                sc.GEN_AI_REQUEST_MODEL: request_model,
                sc.GEN_AI_RESPONSE_MODEL: response_model,
            }
        )
        if request_duration_s is not None:
            attrs = {**base, sc.ERROR_TYPE: error_type} if error_type else base
            self._record(sc.SERVER_REQUEST_DURATION, request_duration_s, attrs)
        # The conventions define the token timings for successful responses only.
        if error_type is None and time_to_first_token_s is not None:
            self._record(sc.SERVER_TIME_TO_FIRST_TOKEN, time_to_first_token_s, base)
        if error_type is None and time_per_output_token_s is not None:
            self._record(sc.SERVER_TIME_PER_OUTPUT_TOKEN, time_per_output_token_s, base)

    # --- agents, tools, workflows, MCP ------------------------------------------------------------

    def record_agent(
        self,
        agent_name: str | None,
        duration_s: float,
        *,
        error_type: str | None = None,
        model: str | None = None,
    ) -> None:
        attrs = known_attrs(
            **{sc.GEN_AI_AGENT_NAME: agent_name, sc.GEN_AI_REQUEST_MODEL: model, sc.ERROR_TYPE: error_type}
        )
        self._record(self.names.invoke_agent_duration, duration_s, attrs)

    def record_tool(
        self,
        tool_name: str,
        duration_s: float,
        *,
        error_type: str | None = None,
        tool_type: str | None = None,
        agent_name: str | None = None,
    ) -> None:
        attrs = known_attrs(
            **{
                sc.GEN_AI_TOOL_NAME: tool_name,
                sc.GEN_AI_TOOL_TYPE: tool_type,
                sc.GEN_AI_AGENT_NAME: agent_name,
                sc.ERROR_TYPE: error_type,
            }
        )
        self._record(self.names.execute_tool_duration, duration_s, attrs)
        self._record(sc.FP_TOOL_CALLS, 1, attrs)

    def record_workflow(
        self, workflow_name: str | None, duration_s: float, *, error_type: str | None = None
    ) -> None:
        attrs = known_attrs(**{sc.GEN_AI_WORKFLOW_NAME: workflow_name, sc.ERROR_TYPE: error_type})
        self._record(self.names.invoke_workflow_duration, duration_s, attrs)

    def record_mcp(
        self,
        *,
        server_side: bool,
        method: str,
        duration_s: float,
        error_type: str | None = None,
        tool_name: str | None = None,
        protocol_version: str | None = None,
        transport: str | None = None,
    ) -> None:
        attrs = known_attrs(
            **{
                sc.MCP_METHOD_NAME: method,
                sc.GEN_AI_TOOL_NAME: tool_name,
                sc.MCP_PROTOCOL_VERSION: protocol_version,
                sc.NETWORK_TRANSPORT: transport,
                sc.ERROR_TYPE: error_type,
            }
        )
        self._record(sc.MCP_SERVER_DURATION if server_side else sc.MCP_CLIENT_DURATION, duration_s, attrs)

    # --- the gateway's decisions ------------------------------------------------------------------

    def record_cache_lookup(
        self, hit: bool, *, request_model: str | None = None, tenant: Mapping[str, str] | None = None
    ) -> None:
        attrs = known_attrs(**{sc.FP_CACHE_HIT: hit, sc.GEN_AI_REQUEST_MODEL: request_model})
        self._record(sc.FP_CACHE_LOOKUPS, 1, {**attrs, **tenant_attrs(tenant or {})})

    def record_fallback(
        self, reason: str, *, deployment: str | None = None, request_model: str | None = None
    ) -> None:
        """One move past `deployment` (the one that failed) to the next in its chain."""
        attrs = known_attrs(
            **{sc.FP_REASON: reason, sc.FP_DEPLOYMENT: deployment, sc.GEN_AI_REQUEST_MODEL: request_model}
        )
        self._record(sc.FP_FALLBACKS, 1, attrs)

    def record_quota_denial(
        self, reason: str, *, scope: str | None = None, tenant: Mapping[str, str] | None = None
    ) -> None:
        attrs = known_attrs(**{sc.FP_REASON: reason, sc.FP_QUOTA_SCOPE: scope})
        self._record(sc.FP_QUOTA_DENIALS, 1, {**attrs, **tenant_attrs(tenant or {})})

    def record_breaker_trip(
        self, reason: str, *, breaker: str | None = None, tenant: Mapping[str, str] | None = None
    ) -> None:
        attrs = known_attrs(**{sc.FP_REASON: reason, sc.FP_BREAKER_NAME: breaker})
        self._record(sc.FP_BREAKER_TRIPS, 1, {**attrs, **tenant_attrs(tenant or {})})

    def record_dropped(self, signal: str, count: int, reason: str) -> None:
        """Telemetry the pipeline dropped rather than block on (see `setup`)."""
        self._record(sc.FP_TELEMETRY_DROPPED, count, {sc.FP_TELEMETRY_SIGNAL: signal, sc.ERROR_TYPE: reason})
