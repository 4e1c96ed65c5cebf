"""Spans and events as the span store keeps them, whatever they arrived as.

A `SpanRecord` is one finished span: its identity, timing and status, every attribute as JSON, and the
few facts queries filter and sum on (agent, team, model, tokens, cost, ...) lifted into their own
fields. An `EventRecord` is one log record or event (e.g. captured message content). Both are built from
the SDK's in-process objects here and from OTLP payloads in `fleetplane.telemetry.otlp_decode`, through
the same `span_record` / `event_record` functions, so a span stores identically however it came.

Attributes arrive under both today's GenAI names and the newest ones (`gen_ai.system` and
`gen_ai.provider.name`, `gen_ai.usage.prompt_tokens` and `gen_ai.usage.input_tokens`): each lifted
fact lists its names, newest first, and takes the first one present — on the span, else on its resource
(an agent process may declare its agent and team once, as resource attributes).
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

# Longest text kept in an indexed column; longer values are cut (the full value stays in `attributes`).
MAX_LABEL = 255
MAX_NAME = 1024

# Each lifted column and the attribute names it is read from, in order of preference.
LIFTED: dict[str, tuple[str, ...]] = {
    "operation": ("gen_ai.operation.name",),
    "agent": ("gen_ai.agent.name", "fleetplane.agent"),
    "request_model": ("gen_ai.request.model",),
    "response_model": ("gen_ai.response.model",),
    "provider": ("gen_ai.provider.name", "gen_ai.system"),
    "organization": ("fleetplane.organization",),
    "team": ("fleetplane.team",),
    "customer": ("fleetplane.customer",),
    "user": ("fleetplane.user", "user.id"),
    "key": ("fleetplane.key",),
    "error_type": ("error.type",),
    "prompt_name": ("gen_ai.prompt.name",),
    "prompt_version": ("gen_ai.prompt.version",),
    "conversation_id": ("gen_ai.conversation.id",),
}
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
COST_USD = ("fleetplane.cost.usd",)
FINISH_REASONS = ("gen_ai.response.finish_reasons",)
SERVICE_NAME = "service.name"
EVENT_NAME_ATTRIBUTE = "event.name"  # where events were named before LogRecord had an event_name field

SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUS_CODES = ("unset", "ok", "error")


@dataclass
class SpanRecord:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str | None
    name: str
    kind: str  # one of SPAN_KINDS
    start_ns: int
    end_ns: int
    status_code: str  # one of STATUS_CODES
    status_message: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # {"name", "time_ns", "attributes"}
    links: list[dict[str, Any]] = field(default_factory=list)  # {"trace_id", "span_id", "attributes"}
    resource: dict[str, Any] = field(default_factory=dict)
    scope_name: str | None = None
    scope_version: str | None = None
    # Lifted from the attributes (see LIFTED); None when absent.
    service_name: str | None = None
    operation: str | None = None
    agent: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    provider: str | None = None
    organization: str | None = None
    team: str | None = None
    customer: str | None = None
    user: str | None = None
    key: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: Decimal | None = None
    error_type: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    conversation_id: str | None = None
    finish_reasons: list[str] | None = None

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def is_error(self) -> bool:
        return self.status_code == "error"


@dataclass
class EventRecord:
    trace_id: str | None
    span_id: str | None
    time_ns: int  # when it happened; the observed time when the producer gave none
    observed_ns: int
    event_name: str | None
    severity_number: int | None
    severity_text: str | None
    body: Any
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    scope_name: str | None = None
    service_name: str | None = None

    @property
    def event_id(self) -> str:
        """A digest of the whole record: an exporter's retry of the same record is stored once."""
        canonical = orjson.dumps(
            [
                self.trace_id,
                self.span_id,
                self.time_ns,
                self.observed_ns,
                self.event_name,
                self.severity_number,
                self.severity_text,
                self.body,
                self.attributes,
                self.resource,
                self.scope_name,
            ],
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(canonical).hexdigest()[:32]


def span_record(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str | None,
    name: str,
    kind: str,
    start_ns: int,
    end_ns: int,
    status_code: str,
    status_message: str | None,
    attributes: dict[str, Any],
    events: list[dict[str, Any]],
    links: list[dict[str, Any]],
    resource: dict[str, Any],
    scope_name: str | None,
    scope_version: str | None,
) -> SpanRecord:
    """A span with its query facts lifted from `attributes` (else `resource`)."""
    record = SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id or None,
        name=clean(name, MAX_NAME) or "",
        kind=kind,
        start_ns=start_ns,
        end_ns=end_ns,
        status_code=status_code,
        status_message=clean(status_message, None) or None,
        attributes=attributes,
        events=events,
        links=links,
        resource=resource,
        scope_name=clean(scope_name, MAX_LABEL) or None,
        scope_version=clean(scope_version, MAX_LABEL) or None,
    )
    for column, names in LIFTED.items():
        setattr(record, column, clean(_text(_first(names, attributes, resource)), MAX_LABEL))
    record.service_name = clean(_text(resource.get(SERVICE_NAME, attributes.get(SERVICE_NAME))), MAX_LABEL)
    record.input_tokens = _count(_first(INPUT_TOKENS, attributes, resource))
    record.output_tokens = _count(_first(OUTPUT_TOKENS, attributes, resource))
    record.cost_usd = _dollars(_first(COST_USD, attributes, resource))
    record.finish_reasons = _texts(_first(FINISH_REASONS, attributes, resource))
    return record


def event_record(
    *,
    trace_id: str | None,
    span_id: str | None,
    time_ns: int,
    observed_ns: int,
    event_name: str | None,
    severity_number: int | None,
    severity_text: str | None,
    body: Any,
    attributes: dict[str, Any],
    resource: dict[str, Any],
    scope_name: str | None,
) -> EventRecord:
    name = event_name or _text(attributes.get(EVENT_NAME_ATTRIBUTE))
    return EventRecord(
        trace_id=trace_id or None,
        span_id=span_id or None,
        time_ns=time_ns or observed_ns,
        observed_ns=observed_ns or time_ns,
        event_name=clean(name, MAX_LABEL) or None,
        severity_number=severity_number or None,
        severity_text=clean(severity_text, MAX_LABEL) or None,
        body=body,
        attributes=attributes,
        resource=resource,
        scope_name=clean(scope_name, MAX_LABEL) or None,
        service_name=clean(_text(resource.get(SERVICE_NAME)), MAX_LABEL),
    )


def jsonable(value: Any) -> Any:
    """An attribute or body value as JSON both databases accept: no bytes, no NaN, no NUL characters."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return clean(value, None)
    if isinstance(value, float):
        # JSON has no NaN or infinities; Postgres refuses them, so they are kept as their names.
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [jsonable(v) for v in value]
    return clean(str(value), None)


def attributes_json(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {clean(str(k), None) or "": jsonable(v) for k, v in (attributes or {}).items()}


def clean(text: str | None, limit: int | None) -> str | None:
    """Text a database column takes: NUL characters dropped (Postgres refuses them), cut to `limit`."""
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate from a lenient JSON decoder
        text = text.encode("utf-8", "replace").decode()
    return text if limit is None else text[:limit]


def _first(names: tuple[str, ...], *sources: Mapping[str, Any]) -> Any:
    for source in sources:
        for name in names:
            value = source.get(name)
            if value is not None and value != "":
                return value
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None  # an array or map is no label


def _texts(value: Any) -> list[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list | tuple) else [value]
    texts = [t for t in (clean(_text(v), MAX_LABEL) for v in items) if t is not None]
    return texts or None


def _count(value: Any) -> int | None:
    """A token count from an int, a whole float or a numeric string; anything else is no count."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if 0 <= value < 2**62 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and 0 <= value < 2**62 else None
    if isinstance(value, str) and value.strip().isdigit():
        return _count(int(value.strip()))
    return None


def _dollars(value: Any) -> Decimal | None:
    """A cost from a number or a numeric string (kept as Decimal, as the usage ledger keeps costs)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0 or amount >= Decimal(10) ** 10:
        return None
    return amount.quantize(Decimal("1e-10"))


# The last SDK resource converted and its JSON: every span of a process shares one immutable resource, so
# converting it once instead of per span saves work on the batch thread. One entry, swapped whole, so
# threads never see a half-written pair; the dict is never mutated once made.
_resource_json: tuple[Any, dict[str, Any]] = (None, {})


def _sdk_resource_json(resource: Any) -> dict[str, Any]:
    global _resource_json
    last, converted = _resource_json
    if resource is last and resource is not None:
        return converted
    converted = attributes_json(resource.attributes if resource is not None else None)
    _resource_json = (resource, converted)
    return converted


def from_sdk_span(span: Any) -> SpanRecord | None:
    """A finished SDK `ReadableSpan` as a record; None for a span without a valid context."""
    context = span.context
    if context is None or not context.is_valid:
        return None
    parent = span.parent
    status = span.status
    scope = span.instrumentation_scope
    return span_record(
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_span_id=f"{parent.span_id:016x}" if parent is not None and parent.span_id else None,
        name=span.name or "",
        kind=span.kind.name.lower(),
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        status_code=status.status_code.name.lower(),
        status_message=status.description,
        attributes=attributes_json(span.attributes),
        events=[
            {"name": e.name, "time_ns": e.timestamp, "attributes": attributes_json(e.attributes)}
            for e in span.events
        ],
        links=[
            {
                "trace_id": f"{link.context.trace_id:032x}",
                "span_id": f"{link.context.span_id:016x}",
                "attributes": attributes_json(link.attributes),
            }
            for link in span.links
        ],
        resource=_sdk_resource_json(span.resource),
        scope_name=scope.name if scope is not None else None,
        scope_version=scope.version if scope is not None else None,
    )


def from_sdk_log(item: Any) -> EventRecord:
    """An SDK log record as handed to a log exporter: `ReadableLogRecord` (SDK 1.39+) or the older
    `LogData`, whose resource sits on the record itself."""
    log = item.log_record
    resource = getattr(item, "resource", None) or getattr(log, "resource", None)
    scope = getattr(item, "instrumentation_scope", None)
    severity = log.severity_number
    return event_record(
        trace_id=f"{log.trace_id:032x}" if log.trace_id else None,
        span_id=f"{log.span_id:016x}" if log.span_id else None,
        time_ns=log.timestamp or 0,
        observed_ns=log.observed_timestamp or 0,
        event_name=getattr(log, "event_name", None),
        severity_number=severity.value if severity is not None else None,
        severity_text=log.severity_text,
        body=jsonable(log.body),
        attributes=attributes_json(log.attributes),
        resource=attributes_json(resource.attributes if resource is not None else None),
        scope_name=scope.name if scope is not None else None,
    )
