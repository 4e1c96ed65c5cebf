"""The OpenTelemetry pipeline one process owns: providers, bounded batch processors, exporters.

`Telemetry.create()` builds a TracerProvider, a MeterProvider and a LoggerProvider (events need one, or
they vanish silently) and never touches OpenTelemetry's global providers unless `install_global()` is
called: the gateway process and the tests may hold several pipelines at once.

Every span and log record goes through a batch processor, never a synchronous one, so a slow backend costs
the caller nothing. Each destination (the OTLP/HTTP exporter, each in-process sink) has its own bounded
queue: when it is full, the new item is dropped and counted in `fleetplane.telemetry.dropped`
(by `fleetplane.telemetry.signal` and `error.type`: `queue_full`, `export_failed`, `shutdown`) rather
than blocking the call that ended the span. A gate in front of the SDK's processor counts what it admits
and what reached the exporter, so the SDK's own queue can never overflow silently behind it.

Exporters: OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` (or the signal-specific `..._TRACES_/_METRICS_/
_LOGS_ENDPOINT`) when set; any `SpanSink`/`LogSink` the caller passes (the span store is one); and
`InMemorySink` for tests. Nothing here writes files or opens connections other than to those endpoints.

Spans keep at most 128 attributes (OpenTelemetry's default, set explicitly): see `spans` for how the
helpers stay inside it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider

from fleetplane.state.clock import Clock
from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.content import ContentPolicy, scrub_attributes
from fleetplane.telemetry.metrics import GenAIMetrics, views
from fleetplane.telemetry.processors import (
    BoundedLogProcessor,
    BoundedSpanProcessor,
    DropCounter,
    InMemorySink,
    LogSink,
    QueueLimits,
    SpanSink,
    _closer,
    _sender,
)
from fleetplane.telemetry.spans import GenAISpans

# The processors' public names stay importable from here, where callers set a pipeline up.
__all__ = [
    "BoundedLogProcessor",
    "BoundedSpanProcessor",
    "InMemorySink",
    "LogSink",
    "OtlpHttp",
    "QueueLimits",
    "SpanSink",
    "Telemetry",
]

log = logging.getLogger("fleetplane.telemetry")

MAX_SPAN_ATTRIBUTES = 128


@dataclass(frozen=True)
class OtlpHttp:
    """Where OTLP/HTTP sends each signal (None: not sent). Headers, compression, TLS come from OTEL_* env."""

    traces_endpoint: str | None = None
    metrics_endpoint: str | None = None
    logs_endpoint: str | None = None
    headers: Mapping[str, str] | None = None
    # Per export, retries included (None: OTEL_EXPORTER_OTLP_TIMEOUT, else 10 s).
    timeout_s: float | None = None
    metric_export_interval_s: float = 60.0

    @classmethod
    def to(
        cls, base_url: str, headers: Mapping[str, str] | None = None, timeout_s: float | None = None
    ) -> OtlpHttp:
        base = base_url.rstrip("/")
        return cls(f"{base}/v1/traces", f"{base}/v1/metrics", f"{base}/v1/logs", headers, timeout_s)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OtlpHttp | None:
        """The endpoints the standard OTEL_* variables name, or None when they name none."""
        env = os.environ if environ is None else environ
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip().rstrip("/")

        def endpoint(signal: str) -> str | None:
            if env.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower() == "none":
                return None
            specific = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
            # A signal-specific endpoint is used as given; the base one gets the signal's path.
            return specific or (f"{base}/v1/{signal}" if base else None)

        found = cls(endpoint("traces"), endpoint("metrics"), endpoint("logs"))
        if not (found.traces_endpoint or found.metrics_endpoint or found.logs_endpoint):
            return None
        return found


class Telemetry:
    """One process's pipeline: providers, the GenAI span helpers and the metrics built on them."""

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        logger_provider: LoggerProvider,
        *,
        names: sc.SemconvNames,
        content: ContentPolicy,
        clock: Clock | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.logger_provider = logger_provider
        self.names = names
        self.content = content
        schema = None if names.latest else sc.SCHEMA_URL
        self.tracer = tracer_provider.get_tracer(sc.SCOPE_NAME, schema_url=schema)
        self.meter = meter_provider.get_meter(sc.SCOPE_NAME, schema_url=schema)
        self.events = logger_provider.get_logger(sc.SCOPE_NAME, schema_url=schema)
        self.metrics = GenAIMetrics(self.meter, names)
        self.spans = GenAISpans(
            self.tracer, names=names, content=content, metrics=self.metrics, events=self.events, clock=clock
        )

    @classmethod
    def create(
        cls,
        service_name: str,
        *,
        span_sinks: Sequence[SpanSink] = (),
        log_sinks: Sequence[LogSink] = (),
        otlp: OtlpHttp | bool = True,
        metric_readers: Sequence[MetricReader] = (),
        resource_attributes: Mapping[str, Any] | None = None,
        queue: QueueLimits | None = None,
        content: ContentPolicy | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Telemetry:
        """A pipeline for `service_name`. `otlp=True` exports where the OTEL_* env says (if anywhere);
        `False` never; an `OtlpHttp` exactly there. Env-driven choices are read here, once."""
        env = os.environ if environ is None else environ
        destination = OtlpHttp.from_env(env) if otlp is True else (otlp or None)
        limits = queue or QueueLimits()
        resource_values = scrub_attributes({**(resource_attributes or {}), "service.name": service_name})
        resource = Resource.create(resource_values)
        names = sc.select(env)
        readers = list(metric_readers)
        if destination is not None and destination.metrics_endpoint:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            exporter = OTLPMetricExporter(
                endpoint=destination.metrics_endpoint,
                headers=destination.headers,
                timeout=destination.timeout_s,
            )
            interval = destination.metric_export_interval_s * 1000
            readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=interval))
        meter_provider = MeterProvider(readers, resource, shutdown_on_exit=False, views=views(names))
        tracer_provider = TracerProvider(
            resource=resource,
            shutdown_on_exit=False,
            span_limits=SpanLimits(max_span_attributes=MAX_SPAN_ATTRIBUTES),
            meter_provider=meter_provider,
        )
        logger_provider = LoggerProvider(resource, shutdown_on_exit=False, meter_provider=meter_provider)
        telemetry = cls(
            tracer_provider,
            meter_provider,
            logger_provider,
            names=names,
            content=content or ContentPolicy.from_env(env),
            clock=clock,
        )
        telemetry._connect(destination, span_sinks, log_sinks, limits)
        return telemetry

    def _connect(
        self,
        destination: OtlpHttp | None,
        span_sinks: Sequence[SpanSink],
        log_sinks: Sequence[LogSink],
        limits: QueueLimits,
    ) -> None:
        common: dict[str, Any] = {"limits": limits, "meter_provider": self.meter_provider}

        def counter(signal: str) -> DropCounter:
            return lambda count, reason: self.metrics.record_dropped(signal, count, reason)

        span_dropped, log_dropped = counter("traces"), counter("logs")
        for span_sink in span_sinks:
            processor = BoundedSpanProcessor(
                _sender(span_sink), dropped=span_dropped, close=_closer(span_sink), **common
            )
            self.tracer_provider.add_span_processor(processor)
        for log_sink in log_sinks:
            self.logger_provider.add_log_record_processor(
                BoundedLogProcessor(_sender(log_sink), dropped=log_dropped, close=_closer(log_sink), **common)
            )
        if destination is None:
            return
        if destination.traces_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            spans_out = OTLPSpanExporter(
                endpoint=destination.traces_endpoint,
                headers=destination.headers,
                timeout=destination.timeout_s,
            )
            self.tracer_provider.add_span_processor(
                BoundedSpanProcessor(
                    _sender(spans_out), dropped=span_dropped, close=spans_out.shutdown, **common
                )
            )
        if destination.logs_endpoint:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

            logs_out = OTLPLogExporter(
                endpoint=destination.logs_endpoint, headers=destination.headers, timeout=destination.timeout_s
            )
            self.logger_provider.add_log_record_processor(
                BoundedLogProcessor(_sender(logs_out), dropped=log_dropped, close=logs_out.shutdown, **common)
            )

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        millis = int(timeout_s * 1000)
        providers = (self.tracer_provider, self.logger_provider, self.meter_provider)
        return all([provider.force_flush(millis) for provider in providers])

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Flush and stop, giving up after `timeout_s` (the SDK's own shutdown ignores its timeouts);
        True when everything was handed over in time."""
        done = threading.Event()

        def stop() -> None:
            # Spans and logs first: their processors record drops on the meter provider.
            self.tracer_provider.shutdown()
            self.logger_provider.shutdown()
            self.meter_provider.shutdown(timeout_millis=max(1, int(timeout_s * 1000)))
            done.set()

        threading.Thread(target=stop, name="fleetplane-telemetry-shutdown", daemon=True).start()
        finished = done.wait(timeout_s)
        if not finished:
            log.warning("telemetry shutdown did not finish within %.1f s; unsent items are lost", timeout_s)
        return finished

    def install_global(self) -> None:
        """Make these providers OpenTelemetry's global ones (once per process; for agents, not servers)."""
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)
        _logs.set_logger_provider(self.logger_provider)
