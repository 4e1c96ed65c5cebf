"""W3C trace context (`traceparent`, `tracestate`) and `baggage` across HTTP and MCP.

Always W3C, whatever global propagator a process configured: the gateway, agents and MCP servers must agree
on one format, or a trace splits in two at every hop. Carriers are HTTP header dicts, Starlette-like header
objects (case-insensitive `.get`, `.getlist`), raw ASGI header pairs, and an MCP request's `params._meta`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from fleetplane.telemetry.semconv import MCP_META

W3C = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
FIELDS = frozenset(W3C.fields)  # traceparent, tracestate, baggage


def _as_str(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class _HeaderGetter(Getter[Any]):
    """Reads a header from a mapping (any case), a Starlette `Headers`, or ASGI `[(b"name", b"value")]`."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        if isinstance(carrier, Mapping) or hasattr(carrier, "get"):
            getlist = getattr(carrier, "getlist", None)
            if callable(getlist):
                values = getlist(key)
                return [_as_str(v) for v in values] if values else None
            value = carrier.get(key)
            if value is None and isinstance(carrier, Mapping):
                value = next((v for k, v in carrier.items() if _as_str(k).lower() == key), None)
            if value is None:
                return None
            return [_as_str(v) for v in value] if isinstance(value, (list, tuple)) else [_as_str(value)]
        found = [_as_str(v) for k, v in carrier if _as_str(k).lower() == key]
        return found or None

    def keys(self, carrier: Any) -> list[str]:
        if isinstance(carrier, Mapping):
            return [_as_str(k) for k in carrier]
        if hasattr(carrier, "keys"):
            return [_as_str(k) for k in carrier.keys()]  # noqa: SIM118 - a header object, not a dict
        return [_as_str(k) for k, _ in carrier]


_GETTER = _HeaderGetter()


def inject_headers(
    headers: MutableMapping[str, str] | None = None, *, context: Context | None = None
) -> dict[str, str]:
    """The trace headers of `context` (default: the current one), also written into `headers` if given."""
    carrier: dict[str, str] = {}
    W3C.inject(carrier, context=context)
    if headers is not None:
        headers.update(carrier)
    return carrier


def extract_headers(
    headers: Mapping[str, Any] | Iterable[tuple[Any, Any]] | Any, *, context: Context | None = None
) -> Context:
    """The context incoming headers carry, on top of `context` (default: an empty one, so a new root)."""
    return W3C.extract(headers, context=context, getter=_GETTER)


def inject_mcp_meta(
    params: MutableMapping[str, Any] | None, *, context: Context | None = None
) -> dict[str, Any]:
    """MCP request `params` with the trace context added to `params._meta` (other `_meta` keys kept)."""
    out: dict[str, Any] = dict(params or {})
    meta = dict(out.get(MCP_META) or {})
    W3C.inject(meta, context=context)
    out[MCP_META] = meta
    if params is not None:
        params[MCP_META] = meta
    return out


def extract_mcp_meta(params: Mapping[str, Any] | None, *, context: Context | None = None) -> Context:
    """The context an MCP request carries in `params._meta`, on top of `context` (default: empty)."""
    meta = (params or {}).get(MCP_META)
    return W3C.extract(meta if isinstance(meta, Mapping) else {}, context=context, getter=_GETTER)
