"""OTLP payloads, protobuf or OTLP/JSON, into records; what cannot be stored is counted as rejected.

OTLP/JSON is the protobuf JSON mapping with three differences, handled here: trace and span ids are hex
(not base64), enums are integers (the mapping accepts both), and fields may be lowerCamelCase or the
proto's own names. So a JSON body has its ids rewritten to base64 and is then parsed into the same
protobuf message as a binary body: one decoding path, and a span stores identically either way.
Unknown fields are ignored, as the OTLP spec asks of receivers.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from fleetplane.telemetry.records import (
    SPAN_KINDS,
    STATUS_CODES,
    EventRecord,
    SpanRecord,
    clean,
    event_record,
    jsonable,
    span_record,
)

M = TypeVar("M", bound=Message)

_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_ID_LENGTHS = {"trace": 16, "span": 8}


class PayloadError(ValueError):
    """The body is not an OTLP message of the expected kind; the message says where."""


@dataclass
class Decoded:
    spans: list[SpanRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    accepted_points: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        if len(self.reasons) < 3:  # the answer names a few problems, not one per item
            self.reasons.append(reason)

    @property
    def error_message(self) -> str:
        return "; ".join(self.reasons)


def parse(body: bytes, message: type[M], *, json: bool) -> M:
    """Parse a protobuf or OTLP/JSON body into `message`, or raise PayloadError."""
    if not json:
        try:
            return message.FromString(body)
        except (DecodeError, RecursionError):
            # The decoder's own text ("Error parsing message") adds nothing a sender could act on.
            raise PayloadError(f"the body is not a protobuf {message.DESCRIPTOR.name}") from None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PayloadError(f"the body is not an OTLP/JSON {message.DESCRIPTOR.name}: expected an object")
    _hex_ids_to_base64(document, "")
    try:
        return json_format.ParseDict(document, message(), ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise PayloadError(f"the body is not an OTLP/JSON {message.DESCRIPTOR.name}: {exc}") from None


def _hex_ids_to_base64(node: Any, path: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else key
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise PayloadError(f"{where}: {value[:40]!r} is not a hex id") from None
            else:
                _hex_ids_to_base64(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _hex_ids_to_base64(value, f"{path}[{index}]")


def decode_traces(body: bytes, *, json: bool) -> Decoded:
    return traces_to_records(parse(body, ExportTraceServiceRequest, json=json))


def decode_logs(body: bytes, *, json: bool) -> Decoded:
    return logs_to_records(parse(body, ExportLogsServiceRequest, json=json))


def decode_metrics(body: bytes, *, json: bool) -> Decoded:
    return validate_metrics(parse(body, ExportMetricsServiceRequest, json=json))


def traces_to_records(request: ExportTraceServiceRequest) -> Decoded:
    out = Decoded()
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                problem = (
                    _bad_id(span.trace_id, "trace", "trace_id")
                    or _bad_id(span.span_id, "span", "span_id")
                    or _bad_id(span.parent_span_id, "span", "parent_span_id", optional=True)
                )
                if problem:
                    out.reject(1, f"span {clean(span.name, 80)!r}: {problem}")
                    continue
                out.spans.append(
                    span_record(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=SPAN_KINDS[span.kind] if 0 <= span.kind < len(SPAN_KINDS) else "unspecified",
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano or span.start_time_unix_nano,
                        status_code=STATUS_CODES[span.status.code]
                        if 0 <= span.status.code < len(STATUS_CODES)
                        else "unset",
                        status_message=span.status.message,
                        attributes=attributes_of(span.attributes),
                        events=[
                            {
                                "name": e.name,
                                "time_ns": e.time_unix_nano,
                                "attributes": attributes_of(e.attributes),
                            }
                            for e in span.events
                        ],
                        links=[
                            {
                                "trace_id": link.trace_id.hex(),
                                "span_id": link.span_id.hex(),
                                "attributes": attributes_of(link.attributes),
                            }
                            for link in span.links
                        ],
                        resource=resource,
                        scope_name=scope.name,
                        scope_version=scope.version,
                    )
                )
    return out


def logs_to_records(request: ExportLogsServiceRequest) -> Decoded:
    out = Decoded()
    for resource_logs in request.resource_logs:
        resource = attributes_of(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for log in scope_logs.log_records:
                problem = _bad_id(log.trace_id, "trace", "trace_id", optional=True) or _bad_id(
                    log.span_id, "span", "span_id", optional=True
                )
                if problem:
                    out.reject(1, f"log record: {problem}")
                    continue
                out.events.append(
                    event_record(
                        trace_id=log.trace_id.hex() or None,
                        span_id=log.span_id.hex() or None,
                        time_ns=log.time_unix_nano,
                        observed_ns=log.observed_time_unix_nano,
                        event_name=log.event_name,
                        severity_number=log.severity_number,
                        severity_text=log.severity_text,
                        body=any_value(log.body) if log.HasField("body") else None,
                        attributes=attributes_of(log.attributes),
                        resource=resource,
                        scope_name=scope_logs.scope.name,
                    )
                )
    return out


def validate_metrics(request: ExportMetricsServiceRequest) -> Decoded:
    """Metrics are only forwarded, never stored: a metric without a name or data is rejected."""
    out = Decoded()
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points = data_points(metric)
                if not metric.name:
                    out.reject(max(points, 1), "a metric has no name")
                elif metric.WhichOneof("data") is None:
                    out.reject(1, f"metric {clean(metric.name, 80)!r} has no data")
                else:
                    out.accepted_points += points
    return out


def data_points(metric: Metric) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


def _bad_id(value: bytes, kind: str, name: str, *, optional: bool = False) -> str | None:
    if optional and not value:
        return None
    if len(value) != _ID_LENGTHS[kind]:
        return f"{name} must be {_ID_LENGTHS[kind]} bytes, got {len(value)}"
    if not any(value):
        return f"{name} is all zeroes (an invalid id)"
    return None


def attributes_of(pairs: Any) -> dict[str, Any]:
    """OTLP KeyValue pairs as a JSON object (a repeated key keeps its last value)."""
    return {clean(kv.key, None) or "": any_value(kv.value) for kv in pairs}


def any_value(value: AnyValue) -> Any:
    """Every AnyValue kind as JSON: arrays as lists, kvlists as objects, bytes as base64."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return jsonable(getattr(value, kind))
