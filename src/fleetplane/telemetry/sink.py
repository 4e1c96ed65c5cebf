"""The gateway's own spans and log records into the span store, in process (no OTLP round trip).

These are SDK exporters: the telemetry setup wraps them in the SDK's batch processors, whose threads
call `export`. Export only converts and queues (`SpanStore.submit`), so it never waits on the database;
when the store's queue is full the newest rows are dropped and counted there. Nothing here forwards:
the gateway's own telemetry reaches an external endpoint through the OTLP exporter set up beside these.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from fleetplane.telemetry.records import EventRecord, SpanRecord, from_sdk_log, from_sdk_span
from fleetplane.telemetry.spanstore import SpanStore

log = logging.getLogger("fleetplane.telemetry")


class StoreSpanExporter(SpanExporter):
    def __init__(self, spans: SpanStore) -> None:
        self._spans = spans
        self._shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut:
            return SpanExportResult.FAILURE
        records: list[SpanRecord] = []
        for span in spans:
            try:
                record = from_sdk_span(span)
            except Exception as exc:  # one odd span must not cost the batch
                log.warning("span store: span %r not stored: %s", getattr(span, "name", "?"), exc)
                continue
            if record is not None:
                records.append(record)
        self._spans.submit(records)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._shut = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # queued rows are the span store's to write; its own flush bounds that


class StoreLogExporter(LogRecordExporter):
    def __init__(self, spans: SpanStore) -> None:
        self._spans = spans
        self._shut = False

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        if self._shut:
            return LogRecordExportResult.FAILURE
        records: list[EventRecord] = []
        for item in batch:
            try:
                records.append(from_sdk_log(item))
            except Exception as exc:
                log.warning("span store: log record not stored: %s", exc)
        self._spans.submit(events=records)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        self._shut = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
