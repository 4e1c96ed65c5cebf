"""The pipeline: batch-only, bounded queues that drop and count instead of blocking, sinks, shutdown."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.setup import BoundedSpanProcessor, InMemorySink, QueueLimits, Telemetry

# Exports start only when a batch of 2 is queued (the timer is far off), so the tests are deterministic.
TINY = QueueLimits(max_queue_size=4, max_export_batch_size=2, schedule_delay_millis=60_000)


class BlockingSink:
    """Holds the first export until released, as a stuck backend would."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.items: list[Any] = []

    def export(self, items: Sequence[Any]) -> None:
        self.entered.set()
        assert self.release.wait(30), "test never released the sink"
        self.items.extend(items)


class FailingSink:
    def export(self, items: Sequence[Any]) -> None:
        raise ConnectionError("store is away")


def dropped(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    data = reader.get_metrics_data()
    counts: dict[tuple[str, str], int] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "fleetplane.telemetry.dropped":
                    for point in metric.data.data_points:
                        key = (point.attributes[sc.FP_TELEMETRY_SIGNAL], point.attributes[sc.ERROR_TYPE])
                        counts[key] = int(point.value)
    return counts


def test_otel_a_full_span_queue_drops_and_counts_instead_of_blocking() -> None:
    sink, reader = BlockingSink(), InMemoryMetricReader()
    telemetry = Telemetry.create(
        "q", span_sinks=[sink], metric_readers=[reader], otlp=False, queue=TINY, environ={}
    )
    tracer = telemetry.tracer
    for i in range(2):  # one batch: the worker takes it and gets stuck in the sink
        tracer.start_span(f"first-{i}").end()
    assert sink.entered.wait(10)
    # With the sink stuck, 48 more spans end at once: 4 fit the queue, 44 are dropped. None of these calls
    # waits for the sink (if one did, this loop would never finish).
    for i in range(48):
        with telemetry.spans.execute_tool_span(f"t{i}"):
            pass
    assert dropped(reader) == {("traces", "queue_full"): 44}
    sink.release.set()
    assert telemetry.force_flush()
    assert len(sink.items) == 6
    assert [span.name for span in sink.items[2:]] == [f"execute_tool t{i}" for i in range(4)]
    telemetry.shutdown()


def test_otel_a_full_log_queue_drops_and_counts_too() -> None:
    sink, reader = BlockingSink(), InMemoryMetricReader()
    telemetry = Telemetry.create(
        "q", log_sinks=[sink], metric_readers=[reader], otlp=False, queue=TINY, environ={}
    )
    for _ in range(2):
        telemetry.events.emit(
            event_name="gen_ai.evaluation.result", attributes={"gen_ai.evaluation.name": "x"}
        )
    assert sink.entered.wait(10)
    for _ in range(10):
        telemetry.events.emit(
            event_name="gen_ai.evaluation.result", attributes={"gen_ai.evaluation.name": "x"}
        )
    assert dropped(reader) == {("logs", "queue_full"): 6}
    sink.release.set()
    telemetry.shutdown()
    assert len(sink.items) == 6


def test_otel_one_stuck_destination_does_not_starve_another() -> None:
    stuck, healthy = BlockingSink(), InMemorySink()
    limits = QueueLimits(max_queue_size=4, max_export_batch_size=2, schedule_delay_millis=10)
    telemetry = Telemetry.create("q", span_sinks=[stuck, healthy], otlp=False, queue=limits, environ={})
    for i in range(3):
        telemetry.tracer.start_span(f"s{i}").end()
    assert stuck.entered.wait(10)
    # Each destination has its own queue and thread: the healthy one keeps exporting on its schedule.
    deadline = threading.Event()
    for _ in range(500):
        if len(healthy.spans) == 3:
            break
        deadline.wait(0.01)
    assert [span.name for span in healthy.spans] == ["s0", "s1", "s2"]
    stuck.release.set()
    telemetry.shutdown()


def test_otel_failed_exports_are_counted_as_dropped() -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry.create(
        "q", span_sinks=[FailingSink()], metric_readers=[reader], otlp=False, environ={}
    )
    for i in range(3):
        telemetry.tracer.start_span(f"s{i}").end()
    telemetry.force_flush()
    assert dropped(reader) == {("traces", "export_failed"): 3}
    telemetry.shutdown()


def test_otel_spans_ended_after_shutdown_are_counted() -> None:
    counted: list[tuple[int, str]] = []
    host = Telemetry.create("x", otlp=False, environ={})
    processor = BoundedSpanProcessor(
        lambda batch: True,
        limits=TINY,
        dropped=lambda count, reason: counted.append((count, reason)),
        meter_provider=host.meter_provider,
    )
    host.tracer_provider.add_span_processor(processor)
    processor.shutdown()
    host.tracer.start_span("late").end()
    assert counted == [(1, "shutdown")]
    host.shutdown()


def test_otel_shutdown_gives_up_after_its_timeout() -> None:
    sink = BlockingSink()
    telemetry = Telemetry.create("q", span_sinks=[sink], otlp=False, queue=TINY, environ={})
    for i in range(2):
        telemetry.tracer.start_span(f"s{i}").end()
    assert sink.entered.wait(10)
    assert telemetry.shutdown(timeout_s=0.2) is False
    sink.release.set()


def test_otel_no_global_provider_is_touched_and_only_batch_processors_are_used() -> None:
    before = trace.get_tracer_provider()
    sink = InMemorySink()
    telemetry = Telemetry.create("q", span_sinks=[sink], otlp=False, environ={})
    assert trace.get_tracer_provider() is before
    processors = telemetry.tracer_provider._active_span_processor._span_processors
    assert processors and all(isinstance(p, BoundedSpanProcessor) for p in processors)
    assert all(isinstance(p._inner, BatchSpanProcessor) for p in processors)
    telemetry.shutdown()


def test_otel_sinks_receive_spans_and_events_with_the_service_resource() -> None:
    sink = InMemorySink()
    telemetry = Telemetry.create(
        "agent-7",
        span_sinks=[sink],
        log_sinks=[sink],
        otlp=False,
        resource_attributes={"fleetplane.team": "search"},
        environ={},
    )
    with telemetry.spans.invoke_agent_span("a"):
        telemetry.events.emit(
            event_name=sc.EVENT_EVALUATION_RESULT, attributes={sc.GEN_AI_EVALUATION_NAME: "x"}
        )
    telemetry.force_flush()
    [span] = sink.spans
    assert isinstance(span, ReadableSpan)
    assert span.resource.attributes["service.name"] == "agent-7"
    assert span.resource.attributes["fleetplane.team"] == "search"
    assert span.instrumentation_scope is not None and span.instrumentation_scope.name == "fleetplane"
    [event] = sink.logs
    assert event.log_record.event_name == sc.EVENT_EVALUATION_RESULT
    assert event.log_record.span_id == span.context.span_id
    telemetry.shutdown()


class RefusingExporter(SpanExporter):
    """An SDK exporter that answers FAILURE, as one whose backend refused the batch does."""

    def __init__(self) -> None:
        self.closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.closed = True


def test_otel_sdk_exporters_serve_as_sinks_and_their_failures_are_counted() -> None:
    reader, memory, refusing = InMemoryMetricReader(), InMemorySpanExporter(), RefusingExporter()
    telemetry = Telemetry.create(
        "q", span_sinks=[memory, refusing], metric_readers=[reader], otlp=False, environ={}
    )
    telemetry.tracer.start_span("s").end()
    telemetry.force_flush()
    assert [span.name for span in memory.get_finished_spans()] == ["s"]
    assert dropped(reader) == {("traces", "export_failed"): 1}
    telemetry.shutdown()
    assert refusing.closed
