"""The agent-side SDK: an agent's own loop as `invoke_agent` → `chat` → `execute_tool` traces.

    from fleetplane import telemetry

    telemetry.configure(service_name="support-agent")      # OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT

    @telemetry.tool
    def lookup_order(order_id: str) -> dict: ...

    @telemetry.agent(name="support")
    async def handle(ticket: str) -> str:
        reply = await client.chat.completions.create(..., extra_headers=telemetry.trace_headers())
        ...

The gateway's span for each model call joins the agent's trace through the W3C `traceparent` header:
pass `trace_headers()` as the SDK's `extra_headers`, or install `httpx_request_hook` /
`httpx_async_request_hook` on the `http_client` given to the openai/anthropic SDK (fixed
`default_headers` cannot carry it: it changes with every span).

Without `configure()`, spans go to whatever OpenTelemetry providers the process installed globally (none:
nothing is recorded, and nothing breaks). With it and no endpoint anywhere, spans are made (trace ids
still propagate) and simply not exported: an agent runs the same with or without a fleetplane server. The
SDK writes no files and connects to nothing but the configured endpoint, so it works inside a sandbox.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from opentelemetry import _logs, metrics, trace

from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.content import ContentPolicy
from fleetplane.telemetry.metrics import GenAIMetrics
from fleetplane.telemetry.propagation import inject_headers
from fleetplane.telemetry.spans import GenAISpan, GenAISpans

if TYPE_CHECKING:
    from fleetplane.telemetry.setup import LogSink, SpanSink, Telemetry

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_SERVICE = "fleetplane-agent"

_lock = threading.Lock()
_configured: Telemetry | None = None
_fallback: GenAISpans | None = None
_exit_hooked = False


def configure(
    service_name: str | None = None,
    endpoint: str | None = None,
    *,
    install_global: bool = True,
    span_sinks: tuple[SpanSink, ...] = (),
    log_sinks: tuple[LogSink, ...] = (),
    resource_attributes: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Telemetry:
    """Set up this agent process's telemetry: OTLP/HTTP to `endpoint` (a base URL such as
    `http://fleetplane:4318`; `/v1/traces` etc. are appended), else to `OTEL_EXPORTER_OTLP_ENDPOINT`, else
    nowhere. Flushed at exit. `install_global` also makes the providers OpenTelemetry's global ones, so
    other instrumentation in the process joins the same traces; OpenTelemetry takes that only once per
    process, so call `configure()` once (a second call replaces fleetplane's pipeline, not the global)."""
    from fleetplane.telemetry.setup import OtlpHttp, Telemetry

    global _configured, _exit_hooked
    env = os.environ if environ is None else environ
    name = service_name or env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE
    created = Telemetry.create(
        name,
        otlp=OtlpHttp.to(endpoint) if endpoint else True,
        span_sinks=span_sinks,
        log_sinks=log_sinks,
        resource_attributes=resource_attributes,
        environ=env,
    )
    with _lock:
        previous, _configured = _configured, created
        if not _exit_hooked:
            atexit.register(shutdown)
            _exit_hooked = True
    if previous is not None:
        previous.shutdown(timeout_s=2.0)
    if install_global:
        created.install_global()
    return created


def shutdown(timeout_s: float = 5.0) -> bool:
    """Flush and stop what `configure()` set up (also run at interpreter exit)."""
    global _configured
    with _lock:
        current, _configured = _configured, None
    return current.shutdown(timeout_s) if current is not None else True


def spans() -> GenAISpans:
    """The span helpers in use: the configured pipeline's, else ones on the global OpenTelemetry API."""
    global _fallback
    configured = _configured
    if configured is not None:
        return configured.spans
    with _lock:
        if _fallback is None:
            # The API's proxies start delegating once a real provider is installed globally, even later.
            names = sc.select()
            _fallback = GenAISpans(
                trace.get_tracer(sc.SCOPE_NAME),
                names=names,
                content=ContentPolicy.from_env(),
                metrics=GenAIMetrics(metrics.get_meter(sc.SCOPE_NAME), names),
                events=_logs.get_logger(sc.SCOPE_NAME),
            )
        return _fallback


# --- spans ------------------------------------------------------------------------------------------


def agent_span(name: str | None, **options: Any) -> GenAISpan:
    """`invoke_agent {name}`, INTERNAL (pass `remote=True` for an agent behind a network call)."""
    return spans().invoke_agent_span(name, **options)


def tool_span(name: str, **options: Any) -> GenAISpan:
    """`execute_tool {name}`; `span.tool_error()` marks a tool that answered with an error."""
    return spans().execute_tool_span(name, **options)


def workflow_span(name: str | None, **options: Any) -> GenAISpan:
    return spans().invoke_workflow_span(name, **options)


def retrieval_span(data_source_id: str | None, **options: Any) -> GenAISpan:
    return spans().retrieval_span(data_source_id, **options)


def chat_span(*, provider: str, model: str | None, **options: Any) -> GenAISpan:
    """For a model called directly, not through the gateway (which makes this span itself)."""
    return spans().chat_span(provider=provider, model=model, **options)


# --- decorators -------------------------------------------------------------------------------------


def _wrap(
    func: F,
    open_span: Callable[[], GenAISpan],
    before: Callable[[GenAISpan, tuple[Any, ...], dict[str, Any]], None] | None = None,
    after: Callable[[GenAISpan, Any], None] | None = None,
) -> F:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with open_span() as span:
                if before is not None:
                    before(span, args, kwargs)
                result = await func(*args, **kwargs)
                if after is not None:
                    after(span, result)
                return result

        return run_async  # type: ignore[return-value]

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        with open_span() as span:
            if before is not None:
                before(span, args, kwargs)
            result = func(*args, **kwargs)
            if after is not None:
                after(span, result)
            return result

    return run  # type: ignore[return-value]


@overload
def agent(func: F, /) -> F: ...
@overload
def agent(*, name: str | None = None, **options: Any) -> Callable[[F], F]: ...
def agent(func: F | None = None, /, *, name: str | None = None, **options: Any) -> Any:
    """Run each call of a sync or async function inside an `invoke_agent` span (named after it by default)."""

    def decorate(f: F) -> F:
        return _wrap(f, lambda: agent_span(name or f.__name__, **options))

    return decorate(func) if func is not None else decorate


def _arguments(func: Callable[..., Any]) -> Callable[[GenAISpan, tuple[Any, ...], dict[str, Any]], None]:
    signature = inspect.signature(func)

    def record(span: GenAISpan, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return  # the call itself will raise, with a better message
        span.record_tool_arguments({k: v for k, v in bound.arguments.items() if k not in ("self", "cls")})

    return record


def _result(span: GenAISpan, result: Any) -> None:
    # An MCP-style result says it failed with isError rather than raising.
    failed = isinstance(result, Mapping) and result.get("isError") is True
    span.record_tool_result(result, is_error=failed)


@overload
def tool(func: F, /) -> F: ...
@overload
def tool(*, name: str | None = None, description: str | None = None, **options: Any) -> Callable[[F], F]: ...
def tool(
    func: F | None = None, /, *, name: str | None = None, description: str | None = None, **options: Any
) -> Any:
    """Run each call inside an `execute_tool` span; an exception sets `error.type`, an `isError` result
    `tool_error`. Arguments and result are recorded only when content capture puts content on spans."""

    def decorate(f: F) -> F:
        summary = description or (inspect.getdoc(f) or "").split("\n", 1)[0] or None

        def open_span() -> GenAISpan:
            return tool_span(name or f.__name__, description=summary, **options)

        return _wrap(f, open_span, _arguments(f), _result)

    return decorate(func) if func is not None else decorate


# --- joining the gateway's spans to the agent's trace -------------------------------------------------


def trace_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`, `baggage`) for the current span: pass as `extra_headers`."""
    return inject_headers()


def httpx_request_hook(request: Any) -> None:
    """An httpx `event_hooks={"request": [...]}` entry adding the current trace headers to each request."""
    for key, value in inject_headers().items():
        if key not in request.headers:
            request.headers[key] = value


async def httpx_async_request_hook(request: Any) -> None:
    """`httpx_request_hook` for an `httpx.AsyncClient` (whose hooks must be coroutines)."""
    httpx_request_hook(request)


C = TypeVar("C")


def instrument_httpx(client: C) -> C:
    """Add the right trace-header hook to an `httpx.Client` or `httpx.AsyncClient`; returns the client."""
    import httpx

    hooks: dict[str, list[Any]] = {key: list(value) for key, value in client.event_hooks.items()}  # type: ignore[attr-defined]
    hook = httpx_async_request_hook if isinstance(client, httpx.AsyncClient) else httpx_request_hook
    if hook not in hooks.setdefault("request", []):
        hooks["request"].append(hook)
    client.event_hooks = hooks  # type: ignore[attr-defined]
    return client
