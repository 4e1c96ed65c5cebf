"""Bounded batch processing: every span and log record goes through the SDK's batch processors, behind a
gate that drops — and counts — what would not fit in the queue, instead of blocking the caller. Sinks are
anything with `export(items)`: the SDK's exporters, the span store's, an in-memory one for tests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

log = logging.getLogger("fleetplane.telemetry")


class SpanSink(Protocol):
    """An in-process destination for finished spans, called from a batch processor's thread.

    An SDK `SpanExporter` is one too: a returned `FAILURE` counts the batch as dropped (`export_failed`),
    as does an exception; any other return value is success. A `shutdown()` method, if any, is called
    when the pipeline shuts down."""

    def export(self, items: Sequence[ReadableSpan], /) -> object: ...


class LogSink(Protocol):
    """The same for log records and events; an SDK `LogRecordExporter` is one."""

    def export(self, items: Sequence[ReadableLogRecord], /) -> object: ...


class InMemorySink:
    """Keeps what it is given; a `SpanSink` and a `LogSink` for tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans: list[ReadableSpan] = []
        self.logs: list[ReadableLogRecord] = []

    def export(self, items: Sequence[ReadableSpan | ReadableLogRecord]) -> None:
        with self._lock:
            for item in items:
                if isinstance(item, ReadableSpan):
                    self.spans.append(item)
                else:
                    self.logs.append(item)

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()
            self.logs.clear()


@dataclass(frozen=True)
class QueueLimits:
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    # The SDK waits 5 s; 1 s keeps `fleetplane traces` current at the same batching benefit.
    schedule_delay_millis: float = 1000
    export_timeout_millis: float = 30000


DropCounter = Callable[[int, str], None]


class _Gate:
    """Counts items admitted to a queue and not yet handed to its exporter; refuses past capacity."""

    def __init__(self, capacity: int) -> None:
        self._lock = threading.Lock()
        self._capacity = capacity
        self.pending = 0

    def admit(self) -> bool:
        with self._lock:
            if self.pending >= self._capacity:
                return False
            self.pending += 1
            return True

    def release(self, count: int) -> None:
        with self._lock:
            self.pending = max(0, self.pending - count)


def _deliver(
    gate: _Gate, dropped: DropCounter, send: Callable[[Sequence[Any]], bool], batch: Sequence[Any]
) -> bool:
    gate.release(len(batch))
    try:
        ok = send(batch)
    except Exception:
        log.exception("telemetry export failed")
        ok = False
    if not ok:
        dropped(len(batch), "export_failed")
    return ok


_FAILED = (SpanExportResult.FAILURE, LogRecordExportResult.FAILURE)


def _sender(target: SpanSink | LogSink | SpanExporter | LogRecordExporter) -> Callable[[Sequence[Any]], bool]:
    def send(batch: Sequence[Any]) -> bool:
        return target.export(batch) not in _FAILED

    return send


def _closer(target: object) -> Callable[[], None] | None:
    close = getattr(target, "shutdown", None)
    return close if callable(close) else None


class _GatedSpanExporter(SpanExporter):
    def __init__(
        self, send: Callable[[Sequence[Any]], bool], gate: _Gate, dropped: DropCounter, close: Any
    ) -> None:
        self._send, self._gate, self._dropped, self._close = send, gate, dropped, close

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = _deliver(self._gate, self._dropped, self._send, spans)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        if self._close is not None:
            self._close()


class _GatedLogExporter(LogRecordExporter):
    def __init__(
        self, send: Callable[[Sequence[Any]], bool], gate: _Gate, dropped: DropCounter, close: Any
    ) -> None:
        self._send, self._gate, self._dropped, self._close = send, gate, dropped, close

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        ok = _deliver(self._gate, self._dropped, self._send, batch)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        if self._close is not None:
            self._close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _Bounded:
    """Admission in front of an SDK batch processor: refuse and count once the destination is behind."""

    def __init__(self, limits: QueueLimits, dropped: DropCounter) -> None:
        self._gate = _Gate(limits.max_queue_size)
        self._dropped = dropped
        self._closed = False

    def _admit(self) -> bool:
        if self._closed:
            self._dropped(1, "shutdown")
            return False
        if not self._gate.admit():
            self._dropped(1, "queue_full")
            return False
        return True

    def _closing(self, shutdown: Callable[[], Any]) -> None:
        self._closed = True
        shutdown()
        # What was admitted but never reached the exporter (a shutdown that ran out of time) is lost.
        if lost := self._gate.pending:
            self._dropped(lost, "shutdown")
            self._gate.release(lost)


class BoundedSpanProcessor(_Bounded, SpanProcessor):
    """A batch span processor that drops and counts, never blocks, when its destination falls behind."""

    def __init__(
        self,
        send: Callable[[Sequence[Any]], bool],
        *,
        limits: QueueLimits,
        dropped: DropCounter,
        meter_provider: MeterProvider,
        close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(limits, dropped)
        self._inner = BatchSpanProcessor(
            _GatedSpanExporter(send, self._gate, dropped, close),
            max_queue_size=limits.max_queue_size,
            schedule_delay_millis=limits.schedule_delay_millis,
            max_export_batch_size=limits.max_export_batch_size,
            export_timeout_millis=limits.export_timeout_millis,
            meter_provider=meter_provider,
        )

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled and self._admit():
            self._inner.on_end(span)

    def shutdown(self) -> None:
        self._closing(self._inner.shutdown)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class BoundedLogProcessor(_Bounded, LogRecordProcessor):
    """The log-record counterpart of `BoundedSpanProcessor`."""

    def __init__(
        self,
        send: Callable[[Sequence[Any]], bool],
        *,
        limits: QueueLimits,
        dropped: DropCounter,
        meter_provider: MeterProvider,
        close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(limits, dropped)
        self._inner = BatchLogRecordProcessor(
            _GatedLogExporter(send, self._gate, dropped, close),
            schedule_delay_millis=limits.schedule_delay_millis,
            max_export_batch_size=limits.max_export_batch_size,
            export_timeout_millis=limits.export_timeout_millis,
            max_queue_size=limits.max_queue_size,
            meter_provider=meter_provider,
        )

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        if self._admit():
            self._inner.on_emit(log_record)

    def shutdown(self) -> None:
        self._closing(self._inner.shutdown)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)
