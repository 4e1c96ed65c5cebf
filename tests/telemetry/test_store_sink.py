"""The in-process path: the SDK's batch processors hand the process's own spans and log records to the
store's exporters on their own threads; they are stored as the OTLP path would store them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fleetplane.store.db import Store
from fleetplane.telemetry.receiver import Receiver
from fleetplane.telemetry.records import from_sdk_log, from_sdk_span
from fleetplane.telemetry.sink import StoreLogExporter, StoreSpanExporter
from fleetplane.telemetry.spanstore import SpanStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def spans(database_url: str) -> AsyncIterator[SpanStore]:
    store = await Store.open(database_url)
    span_store = SpanStore(store, interval=0.02)
    await span_store.start()
    yield span_store
    await span_store.stop()
    await store.close()


async def test_batch_processor_threads_feed_the_store(spans: SpanStore) -> None:
    resource = Resource.create({"service.name": "fleetplane-gateway"})
    memory = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(StoreSpanExporter(spans)))
    tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    log_memory = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(StoreLogExporter(spans)))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_memory))
    tracer = tracer_provider.get_tracer("fleetplane.gateway")
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 12, "fleetplane.team": "support"}
    with tracer.start_as_current_span("chat gpt-4o", attributes=attrs) as span:
        logger_provider.get_logger("fleetplane.gateway").emit(
            event_name="gen_ai.client.inference.operation.details",
            body={"gen_ai.input.messages": []},
            context=trace.set_span_in_context(span),
        )

    await asyncio.to_thread(tracer_provider.force_flush)
    await asyncio.to_thread(logger_provider.force_flush)
    for _ in range(500):
        if spans.written >= 2:
            break
        await asyncio.sleep(0.01)

    (finished,) = memory.get_finished_spans()
    view = await spans.get_trace(f"{finished.context.trace_id:032x}")
    assert view is not None
    (node,) = view.roots
    assert node.span == from_sdk_span(finished)
    assert (node.span.team, node.span.input_tokens, node.span.service_name) == (
        "support",
        12,
        "fleetplane-gateway",
    )
    assert node.events == [from_sdk_log(log_memory.get_finished_logs()[0])]
    tracer_provider.shutdown()
    logger_provider.shutdown()


async def test_a_shut_exporter_refuses_and_stores_nothing(spans: SpanStore) -> None:
    exporter = StoreSpanExporter(spans)
    exporter.shutdown()

    assert exporter.export([]) == SpanExportResult.FAILURE
    assert spans.pending == 0


async def test_the_receiver_reads_retention_and_forwarding_from_the_environment(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        receiver = Receiver.from_env(
            store,
            {"FLEETPLANE_TELEMETRY_RETENTION": "36h", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
        )
        assert receiver.spans.retention == 36 * 3600
        assert receiver.forwarder is not None and receiver.forwarder.forwards("traces")
        assert Receiver.from_env(store, {}).forwarder is None
        with pytest.raises(ValueError, match="'soon' is not a retention period"):
            Receiver.from_env(store, {"FLEETPLANE_TELEMETRY_RETENTION": "soon"})
    finally:
        await store.close()
