"""Every telemetry name fleetplane emits: OpenTelemetry GenAI and MCP conventions, plus `fleetplane.*`.

The GenAI conventions are in Development and still renaming things. By default fleetplane emits the names of
semantic conventions v1.41.0, the last release in the main repository and what backends read today
(`gen_ai.provider.name` already replaced `gen_ai.system` there). With `OTEL_SEMCONV_STABILITY_OPT_IN`
containing `gen_ai_latest_experimental` it emits the newest names from the conventions' migration notes
instead (never both: two copies of a metric double every dashboard's sum). `select()` reads that once, at
setup; names that do not differ between the two sets are plain module constants.

No convention exists for cost, context-window use, cache, quota, breaker or fallback signals, so those live
under `fleetplane.*`. Metric attributes stay low-cardinality: users, customers and keys go on spans only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_OPT_IN = "gen_ai_latest_experimental"
SCOPE_NAME = "fleetplane"  # the instrumentation scope of everything fleetplane emits
# Where the default names come from; emitted as the instrumentation scope's schema URL.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"


class Op:
    """Well-known `gen_ai.operation.name` values."""

    CHAT = "chat"
    TEXT_COMPLETION = "text_completion"
    GENERATE_CONTENT = "generate_content"
    EMBEDDINGS = "embeddings"
    RETRIEVAL = "retrieval"
    CREATE_AGENT = "create_agent"
    INVOKE_AGENT = "invoke_agent"
    EXECUTE_TOOL = "execute_tool"
    INVOKE_WORKFLOW = "invoke_workflow"


# Model inference proper: the operations the newest conventions move to `gen_ai.client.inference.*`.
INFERENCE_OPERATIONS = frozenset({Op.CHAT, Op.TEXT_COMPLETION, Op.GENERATE_CONTENT})

# --- GenAI attributes -----------------------------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"  # includes cached input tokens
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"  # includes reasoning tokens
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_AGENT_ID = "gen_ai.agent.id"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_AGENT_DESCRIPTION = "gen_ai.agent.description"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_DESCRIPTION = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"  # content: opt-in
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"  # content: opt-in
GEN_AI_PROMPT_NAME = "gen_ai.prompt.name"
GEN_AI_PROMPT_VERSION = "gen_ai.prompt.version"
GEN_AI_DATA_SOURCE_ID = "gen_ai.data_source.id"
GEN_AI_WORKFLOW_NAME = "gen_ai.workflow.name"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
GEN_AI_TOKEN_MODALITY = "gen_ai.token.modality"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"  # content: opt-in
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"  # content: opt-in
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"  # content: opt-in
GEN_AI_EVALUATION_NAME = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"

TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"
TOOL_TYPE_FUNCTION = "function"
TOOL_TYPE_EXTENSION = "extension"
TOOL_TYPE_DATASTORE = "datastore"

# --- general attributes ---------------------------------------------------------------------------
ERROR_TYPE = "error.type"
ERROR_TOOL = "tool_error"  # error.type of a tool that answered with an error: tool success % counts these
ERROR_OTHER = "_OTHER"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"

# --- MCP ------------------------------------------------------------------------------------------
MCP_METHOD_NAME = "mcp.method.name"
MCP_SESSION_ID = "mcp.session.id"
MCP_PROTOCOL_VERSION = "mcp.protocol.version"
MCP_RESOURCE_URI = "mcp.resource.uri"
JSONRPC_REQUEST_ID = "jsonrpc.request.id"
RPC_RESPONSE_STATUS_CODE = "rpc.response.status_code"
NETWORK_TRANSPORT = "network.transport"
MCP_METHOD_TOOLS_CALL = "tools/call"
MCP_METHOD_PROMPTS_GET = "prompts/get"
MCP_META = "_meta"  # where MCP requests carry traceparent/tracestate/baggage

# --- events ---------------------------------------------------------------------------------------
EVENT_INFERENCE_DETAILS = "gen_ai.client.inference.operation.details"
EVENT_EVALUATION_RESULT = "gen_ai.evaluation.result"

# --- fleetplane span attributes -------------------------------------------------------------------
FP_DEPLOYMENT = "fleetplane.deployment"
FP_MODEL_GROUP = "fleetplane.model_group"  # the group a client asked for (request model may be an alias)
FP_REQUEST_ID = "fleetplane.request.id"  # the usage record's id: a span and a ledger row meet here
FP_FALLBACK_HOPS = "fleetplane.fallback.hops"
FP_CACHE_HIT = "fleetplane.cache.hit"
FP_QUOTA_DECISION = "fleetplane.quota.decision"
FP_BREAKER_DECISION = "fleetplane.breaker.decision"
FP_ORGANIZATION = "fleetplane.organization"
FP_TEAM = "fleetplane.team"
FP_CUSTOMER = "fleetplane.customer"
FP_USER = "fleetplane.user"
FP_KEY = "fleetplane.key"  # a key's id or display prefix, never its secret (scrubbed if it looks like one)
FP_COST_USD = "fleetplane.cost.usd"  # also a metric
FP_CONTEXT_UTILIZATION = "fleetplane.context.utilization"  # input tokens / context window; also a metric
FP_REASON = "fleetplane.reason"
FP_QUOTA_SCOPE = "fleetplane.quota.scope"
FP_BREAKER_NAME = "fleetplane.breaker.name"
FP_TELEMETRY_SIGNAL = "fleetplane.telemetry.signal"
FP_ATTRIBUTES_DROPPED = "fleetplane.attributes.dropped"

# Tenant attributes as the gateway knows them; only the first two are low-cardinality enough for metrics.
TENANT_ATTRIBUTES = (FP_ORGANIZATION, FP_TEAM, FP_CUSTOMER, FP_USER, FP_KEY)
TENANT_METRIC_ATTRIBUTES = (FP_ORGANIZATION, FP_TEAM)

# --- histogram bucket boundaries, exactly as the conventions give them ----------------------------
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
MCP_DURATION_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
# fleetplane's own: a share of the context window, finest near full where truncation starts.
UTILIZATION_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    instrument: str  # "histogram" | "counter"
    unit: str
    description: str
    buckets: tuple[float, ...] | None = None


def _hist(name: str, unit: str, description: str, buckets: tuple[float, ...]) -> MetricSpec:
    return MetricSpec(name, "histogram", unit, description, buckets)


def _counter(name: str, unit: str, description: str) -> MetricSpec:
    return MetricSpec(name, "counter", unit, description)


# Metrics with one name in both sets.
SERVER_REQUEST_DURATION = _hist(
    "gen_ai.server.request.duration", "s", "GenAI server request duration.", DURATION_BUCKETS
)
SERVER_TIME_TO_FIRST_TOKEN = _hist(
    "gen_ai.server.time_to_first_token", "s", "Time to generate the first token.", TTFT_BUCKETS
)
SERVER_TIME_PER_OUTPUT_TOKEN = _hist(
    "gen_ai.server.time_per_output_token", "s", "Time per output token after the first.", TPOT_BUCKETS
)
MCP_CLIENT_DURATION = _hist(
    "mcp.client.operation.duration", "s", "MCP request duration seen by the client.", MCP_DURATION_BUCKETS
)
MCP_SERVER_DURATION = _hist(
    "mcp.server.operation.duration", "s", "MCP request duration seen by the server.", MCP_DURATION_BUCKETS
)
FP_COST_METRIC = _counter(FP_COST_USD, "USD", "What model calls cost, in US dollars.")
FP_CONTEXT_METRIC = _hist(
    FP_CONTEXT_UTILIZATION, "1", "Input tokens as a share of the model's context window.", UTILIZATION_BUCKETS
)
FP_FINISH_LENGTH = _counter(
    "fleetplane.finish_reason.length", "{call}", "Model calls cut off at their output token limit."
)
FP_TOOL_CALLS = _counter(
    "fleetplane.tool.calls",
    "{call}",
    "Tool executions; error.type is set on failures (success % = 1 - failed/all).",
)
FP_CACHE_LOOKUPS = _counter(
    "fleetplane.cache.lookups",
    "{lookup}",
    "Gateway response-cache lookups; fleetplane.cache.hit says which hit.",
)
FP_FALLBACKS = _counter(
    "fleetplane.fallbacks", "{fallback}", "Moves to the next deployment of a fallback chain."
)
FP_QUOTA_DENIALS = _counter("fleetplane.quota.denials", "{denial}", "Requests a quota refused, by reason.")
FP_BREAKER_TRIPS = _counter("fleetplane.breaker.trips", "{trip}", "Circuit breakers tripped, by reason.")
FP_TELEMETRY_DROPPED = _counter(
    "fleetplane.telemetry.dropped", "{item}", "Spans and log records dropped instead of blocking, by signal."
)


@dataclass(frozen=True)
class SemconvNames:
    """The names that differ between the default (v1.41.0) conventions and the newest ones."""

    latest: bool
    usage_cache_write_input_tokens: str
    retrieval_top_k: str
    # The duration of inference operations (chat, text_completion, generate_content).
    inference_duration: MetricSpec
    # The duration of every other client operation (embeddings, retrieval, ...).
    operation_duration: MetricSpec
    time_to_first_chunk: MetricSpec
    time_per_output_chunk: MetricSpec
    # v1.41.0: one histogram split by gen_ai.token.type. Newest: counters plus per-operation histograms.
    token_usage: MetricSpec | None
    usage_counters: Mapping[str, MetricSpec]  # keyed by the span attribute the count comes from
    operation_token_histograms: Mapping[str, MetricSpec]
    # Newest only: agent, tool and workflow durations as metrics (before: derived from spans).
    invoke_agent_duration: MetricSpec | None
    execute_tool_duration: MetricSpec | None
    invoke_workflow_duration: MetricSpec | None
    # The newest conventions drop these from in-process invoke_agent spans.
    internal_agent_span_has_id_and_provider: bool

    def metric_specs(self) -> list[MetricSpec]:
        """Every GenAI, MCP and fleetplane metric this set emits."""
        specs = [
            self.inference_duration,
            self.operation_duration,
            self.time_to_first_chunk,
            self.time_per_output_chunk,
            *self.usage_counters.values(),
            *self.operation_token_histograms.values(),
            SERVER_REQUEST_DURATION,
            SERVER_TIME_TO_FIRST_TOKEN,
            SERVER_TIME_PER_OUTPUT_TOKEN,
            MCP_CLIENT_DURATION,
            MCP_SERVER_DURATION,
            FP_COST_METRIC,
            FP_CONTEXT_METRIC,
            FP_FINISH_LENGTH,
            FP_TOOL_CALLS,
            FP_CACHE_LOOKUPS,
            FP_FALLBACKS,
            FP_QUOTA_DENIALS,
            FP_BREAKER_TRIPS,
            FP_TELEMETRY_DROPPED,
        ]
        optional = (
            self.token_usage,
            self.invoke_agent_duration,
            self.execute_tool_duration,
            self.invoke_workflow_duration,
        )
        specs.extend(spec for spec in optional if spec is not None)
        # inference and operation duration share one spec in the default set
        unique: dict[str, MetricSpec] = {spec.name: spec for spec in specs}
        return list(unique.values())


_OPERATION_DURATION = _hist(
    "gen_ai.client.operation.duration", "s", "GenAI operation duration.", DURATION_BUCKETS
)

CURRENT = SemconvNames(
    latest=False,
    usage_cache_write_input_tokens="gen_ai.usage.cache_creation.input_tokens",
    retrieval_top_k="gen_ai.request.top_k",
    inference_duration=_OPERATION_DURATION,
    operation_duration=_OPERATION_DURATION,
    time_to_first_chunk=_hist(
        "gen_ai.client.operation.time_to_first_chunk",
        "s",
        "Time to the first chunk of a stream.",
        DURATION_BUCKETS,
    ),
    time_per_output_chunk=_hist(
        "gen_ai.client.operation.time_per_output_chunk",
        "s",
        "Time per chunk after the first.",
        DURATION_BUCKETS,
    ),
    token_usage=_hist("gen_ai.client.token.usage", "{token}", "Input and output tokens used.", TOKEN_BUCKETS),
    usage_counters={},
    operation_token_histograms={},
    invoke_agent_duration=None,
    execute_tool_duration=None,
    invoke_workflow_duration=None,
    internal_agent_span_has_id_and_provider=True,
)

_USAGE = "gen_ai.client.inference.usage"
LATEST = SemconvNames(
    latest=True,
    usage_cache_write_input_tokens="gen_ai.usage.cache_write.input_tokens",
    retrieval_top_k="gen_ai.retrieval.top_k",
    inference_duration=_hist(
        "gen_ai.client.inference.duration", "s", "GenAI inference duration.", DURATION_BUCKETS
    ),
    operation_duration=_OPERATION_DURATION,
    time_to_first_chunk=_hist(
        "gen_ai.client.inference.time_to_first_chunk",
        "s",
        "Time to the first chunk of a stream.",
        DURATION_BUCKETS,
    ),
    time_per_output_chunk=_hist(
        "gen_ai.client.inference.time_per_output_chunk",
        "s",
        "Time per chunk after the first.",
        DURATION_BUCKETS,
    ),
    token_usage=None,
    usage_counters={
        GEN_AI_USAGE_INPUT_TOKENS: _counter(
            f"{_USAGE}.input_tokens", "{token}", "Input tokens, cached included."
        ),
        GEN_AI_USAGE_OUTPUT_TOKENS: _counter(
            f"{_USAGE}.output_tokens", "{token}", "Output tokens, reasoning included."
        ),
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: _counter(
            f"{_USAGE}.cache_read.input_tokens", "{token}", "Input tokens read from a cache."
        ),
        "gen_ai.usage.cache_write.input_tokens": _counter(
            f"{_USAGE}.cache_write.input_tokens", "{token}", "Input tokens written to a cache."
        ),
        GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: _counter(
            f"{_USAGE}.reasoning.output_tokens", "{token}", "Output tokens spent on reasoning."
        ),
    },
    operation_token_histograms={
        GEN_AI_USAGE_INPUT_TOKENS: _hist(
            "gen_ai.client.inference.operation.input_tokens",
            "{token}",
            "Input tokens per call.",
            TOKEN_BUCKETS,
        ),
        GEN_AI_USAGE_OUTPUT_TOKENS: _hist(
            "gen_ai.client.inference.operation.output_tokens",
            "{token}",
            "Output tokens per call.",
            TOKEN_BUCKETS,
        ),
    },
    invoke_agent_duration=_hist(
        "gen_ai.invoke_agent.duration", "s", "Agent invocation duration.", DURATION_BUCKETS
    ),
    execute_tool_duration=_hist(
        "gen_ai.execute_tool.duration", "s", "Tool execution duration.", DURATION_BUCKETS
    ),
    invoke_workflow_duration=_hist(
        "gen_ai.invoke_workflow.duration", "s", "Workflow invocation duration.", DURATION_BUCKETS
    ),
    internal_agent_span_has_id_and_provider=False,
)

# Older names other instrumentations still send, mapped to the name fleetplane uses for the same thing;
# for readers of foreign telemetry (the OTLP receiver), never emitted.
READ_ALIASES: Mapping[str, str] = {
    "gen_ai.system": GEN_AI_PROVIDER_NAME,
    "gen_ai.usage.prompt_tokens": GEN_AI_USAGE_INPUT_TOKENS,
    "gen_ai.usage.completion_tokens": GEN_AI_USAGE_OUTPUT_TOKENS,
    "gen_ai.usage.cache_write.input_tokens": "gen_ai.usage.cache_creation.input_tokens",
}


def select(environ: Mapping[str, str] | None = None) -> SemconvNames:
    """The name set `OTEL_SEMCONV_STABILITY_OPT_IN` asks for (a comma-separated list of categories)."""
    env = os.environ if environ is None else environ
    categories = {part.strip() for part in env.get(OPT_IN_ENV, "").split(",")}
    return LATEST if LATEST_OPT_IN in categories else CURRENT
