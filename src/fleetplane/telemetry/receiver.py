"""The OTLP/HTTP receiver: `POST /v1/traces`, `/v1/metrics` and `/v1/logs`, as the OTLP spec answers.

Bodies are `application/x-protobuf` or `application/json` (OTLP/JSON), gzip- or deflate-encoded or not
(the official exporters offer both). Answers:
- 200 with an Export*ServiceResponse in the request's encoding; `partial_success` counts the items
  that were rejected (a span without a valid id, a metric without a name) and says why;
- 400 with a google.rpc.Status (code 3, INVALID_ARGUMENT) for a body that does not decode;
- 413 (Status code 8, RESOURCE_EXHAUSTED) for a body, or its decompressed form, over `max_body`;
- 415 (Status code 3, in JSON) for any other content type or content encoding;
- 503 (Status code 14, UNAVAILABLE, with Retry-After) when the span store's queue has no room for the
  request, so the exporter retries it; nothing of that request is kept or forwarded.
Nothing is stored from a refused request. Spans and logs go to the span store; metrics are decoded and
checked, then only forwarded (the span store keeps no metrics). With forwarding configured, every
accepted body is sent on as it was received (see `fleetplane.telemetry.forwarder`).

`Receiver` is the lifecycle (`start()`/`stop()`: the span store's writer and the forwarder);
`receiver_routes(receiver)` are its routes, for the server to mount beside its others.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetplane.store.db import Store
from fleetplane.telemetry.forwarder import FORWARDED_BY, Forwarder, forward_targets
from fleetplane.telemetry.otlp_decode import Decoded, PayloadError, decode_logs, decode_metrics, decode_traces
from fleetplane.telemetry.spanstore import RETENTION_ENV, SpanStore, parse_retention

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_MAX_BODY = 16 * 1024 * 1024
# zlib window bits per content encoding: gzip framing, and deflate as HTTP means it (zlib framing).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
RETRY_AFTER_FULL = 5  # seconds a sender waits when the span store's queue is full

INVALID_ARGUMENT = 3
RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14


class Refusal(Exception):
    def __init__(self, status: int, code: int, message: str, *, as_json: bool) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.as_json = as_json


def _traces_response(decoded: Decoded) -> Message:
    if not decoded.rejected:
        return ExportTraceServiceResponse()
    partial = ExportTracePartialSuccess(rejected_spans=decoded.rejected, error_message=decoded.error_message)
    return ExportTraceServiceResponse(partial_success=partial)


def _logs_response(decoded: Decoded) -> Message:
    if not decoded.rejected:
        return ExportLogsServiceResponse()
    partial = ExportLogsPartialSuccess(
        rejected_log_records=decoded.rejected, error_message=decoded.error_message
    )
    return ExportLogsServiceResponse(partial_success=partial)


def _metrics_response(decoded: Decoded) -> Message:
    if not decoded.rejected:
        return ExportMetricsServiceResponse()
    partial = ExportMetricsPartialSuccess(
        rejected_data_points=decoded.rejected, error_message=decoded.error_message
    )
    return ExportMetricsServiceResponse(partial_success=partial)


# Per signal: how a body decodes, and how the answer is built.
_SIGNALS: dict[str, tuple[Callable[..., Decoded], Callable[[Decoded], Message]]] = {
    "traces": (decode_traces, _traces_response),
    "metrics": (decode_metrics, _metrics_response),
    "logs": (decode_logs, _logs_response),
}


class Receiver:
    def __init__(
        self, spans: SpanStore, *, forwarder: Forwarder | None = None, max_body: int = DEFAULT_MAX_BODY
    ) -> None:
        self.spans = spans
        self.forwarder = forwarder
        self.max_body = max_body
        # Items taken per signal (spans, log records, metric data points), for tests and operators.
        self.accepted = dict.fromkeys(_SIGNALS, 0)

    @classmethod
    def from_env(cls, store: Store, environ: Mapping[str, str] | None = None, **options: Any) -> Receiver:
        """A receiver on `store` with retention (FLEETPLANE_TELEMETRY_RETENTION) and forwarding
        (OTEL_EXPORTER_OTLP_*) as the environment says. Raises ValueError for a bad retention."""
        env = os.environ if environ is None else environ
        spans = SpanStore(store, retention=parse_retention(env.get(RETENTION_ENV)))
        targets = forward_targets(env)
        return cls(spans, forwarder=Forwarder(targets) if targets else None, **options)

    async def start(self) -> None:
        await self.spans.start()
        if self.forwarder is not None:
            await self.forwarder.start()

    async def stop(self) -> None:
        if self.forwarder is not None:
            await self.forwarder.stop()
        await self.spans.stop()

    def routes(self) -> list[Route]:
        return receiver_routes(self)

    async def handle(self, request: Request, signal: str) -> Response:
        try:
            as_json = _encoding(request.headers.get("content-type"))
            encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
            if encoding not in _WBITS and encoding != "identity":
                raise Refusal(
                    415,
                    INVALID_ARGUMENT,
                    f"unsupported content encoding {encoding!r}: send gzip, deflate or no encoding",
                    as_json=True,
                )
            raw = await self._read(request, as_json)
            body = self._inflate(raw, encoding, as_json) if encoding in _WBITS else raw
            decode, answer = _SIGNALS[signal]
            if self._forwarded_by_me(request):
                # Our own forwarded request came back: it was stored when it first arrived.
                return _message(answer(Decoded()), as_json)
            try:
                decoded = decode(body, json=as_json)
            except PayloadError as exc:
                raise Refusal(400, INVALID_ARGUMENT, str(exc), as_json=as_json) from None
            if (decoded.spans or decoded.events) and not self.spans.submit(
                decoded.spans, decoded.events, whole=True
            ):
                raise Refusal(
                    503, UNAVAILABLE, "the span store's queue is full; retry later", as_json=as_json
                )
            if self.forwarder is not None and self.forwarder.forwards(signal):
                content_type = request.headers.get("content-type") or (JSON if as_json else PROTOBUF)
                self.forwarder.submit(signal, raw, content_type, encoding if encoding in _WBITS else None)
            self.accepted[signal] += len(decoded.spans) + len(decoded.events) + decoded.accepted_points
            return _message(answer(decoded), as_json)
        except Refusal as refusal:
            return _status(refusal)

    async def _read(self, request: Request, as_json: bool) -> bytes:
        too_large = Refusal(
            413,
            RESOURCE_EXHAUSTED,
            f"the body is larger than the limit of {self.max_body} bytes",
            as_json=as_json,
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise too_large
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise too_large
            parts.append(chunk)
        return b"".join(parts)

    def _inflate(self, raw: bytes, encoding: str, as_json: bool) -> bytes:
        """Decompress at most `max_body` bytes: a small body must not inflate without bound."""
        inflater = zlib.decompressobj(wbits=_WBITS[encoding])
        invalid = Refusal(400, INVALID_ARGUMENT, f"the body is not valid {encoding}", as_json=as_json)
        try:
            body = inflater.decompress(raw, self.max_body + 1)
        except zlib.error:
            raise invalid from None
        if len(body) > self.max_body:
            raise Refusal(
                413,
                RESOURCE_EXHAUSTED,
                f"the decompressed body is larger than the limit of {self.max_body} bytes",
                as_json=as_json,
            )
        if not inflater.eof or inflater.unused_data:
            raise invalid
        return body

    def _forwarded_by_me(self, request: Request) -> bool:
        return self.forwarder is not None and request.headers.get(FORWARDED_BY) == self.forwarder.instance_id


def receiver_routes(receiver: Receiver) -> list[Route]:
    """`POST /v1/traces`, `/v1/metrics`, `/v1/logs` on `receiver`."""

    def endpoint(signal: str) -> Callable[[Request], Any]:
        async def receive(request: Request) -> Response:
            return await receiver.handle(request, signal)

        receive.__name__ = f"otlp_{signal}"
        return receive

    return [Route(f"/v1/{signal}", endpoint(signal), methods=["POST"]) for signal in _SIGNALS]


def _encoding(content_type: str | None) -> bool:
    """True for OTLP/JSON, False for protobuf; anything else is a 415."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == PROTOBUF:
        return False
    if media == JSON:
        return True
    problem = f"unsupported content type {media!r}" if media else "no content type"
    raise Refusal(415, INVALID_ARGUMENT, f"{problem}: send {PROTOBUF} or {JSON}", as_json=True)


def _message(message: Message, as_json: bool) -> Response:
    if as_json:
        return Response(orjson.dumps(json_format.MessageToDict(message)), media_type=JSON)
    return Response(message.SerializeToString(), media_type=PROTOBUF)


def _status(refusal: Refusal) -> Response:
    headers = {"retry-after": str(RETRY_AFTER_FULL)} if refusal.status == 503 else None
    if refusal.as_json:
        body = orjson.dumps({"code": refusal.code, "message": refusal.message})
        return Response(body, status_code=refusal.status, media_type=JSON, headers=headers)
    status = Status(code=refusal.code, message=refusal.message)
    return Response(
        status.SerializeToString(), status_code=refusal.status, media_type=PROTOBUF, headers=headers
    )
