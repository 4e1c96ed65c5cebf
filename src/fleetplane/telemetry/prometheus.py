"""`GET /metrics`: the process's OpenTelemetry metrics in the Prometheus text format (version 0.0.4).

`PrometheusReader` is an SDK `MetricReader` that collects when scraped (pull), always cumulative, and
renders by the OpenTelemetry-to-Prometheus compatibility rules:
- names: characters outside `[a-zA-Z0-9_:]` become `_` (runs collapsed), the unit is appended as a
  word (`s` → `_seconds`, `By` → `_bytes`, `1` → `_ratio` on gauges, `{token}` and other annotations
  dropped, `a/b` → `_a_per_b`) unless the name already ends with it, and monotonic sums get `_total`:
  `gen_ai.client.token.usage` ({token}) → `gen_ai_client_token_usage`,
  `gen_ai.client.operation.duration` (s) → `gen_ai_client_operation_duration_seconds`;
- counters (monotonic sums) are `counter`; up-down counters and gauges are `gauge`; explicit-bucket
  histograms are `histogram` with cumulative `_bucket{le=...}` series on the instrument's own
  boundaries, then `+Inf`, `_sum` and `_count`; exponential histograms have no 0.0.4 form and are left out;
- attributes become labels (sanitised like names; two keys that sanitise alike join their values with
  `;`), plus `otel_scope_name`/`otel_scope_version`; label values and help text are escaped;
- resource attributes go on one `target_info` gauge, not on every series.
A name met with two different types keeps the first and leaves the other out (logged once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics import _Gauge as SyncGauge
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    MetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

log = logging.getLogger("fleetplane.telemetry")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

UNITS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}
PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}

_NAME_INVALID = re.compile(r"[^a-zA-Z0-9_:]+")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]+")
_ANNOTATION = re.compile(r"\{[^}]*\}")


class PrometheusReader(MetricReader):
    """Collects on every `scrape()`; register it on the MeterProvider like any reader."""

    def __init__(self) -> None:
        cumulative = AggregationTemporality.CUMULATIVE
        instruments = (
            Counter,
            UpDownCounter,
            Histogram,
            SyncGauge,
            ObservableCounter,
            ObservableUpDownCounter,
            ObservableGauge,
        )
        super().__init__(preferred_temporality=dict.fromkeys(instruments, cumulative))
        self._lock = threading.Lock()
        self._latest: MetricsData | None = None

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._latest = metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._latest = None

    def scrape(self) -> str:
        """Collect now (observable callbacks run in this thread) and render the text format."""
        with self._lock:
            self.collect()
            data, self._latest = self._latest, None
        return render(data)


def prometheus_route(reader: PrometheusReader, path: str = "/metrics") -> Route:
    async def metrics(_: Request) -> Response:
        # Collection runs instrument callbacks, which may block: keep them off the event loop.
        text = await asyncio.to_thread(reader.scrape)
        return Response(text, media_type=CONTENT_TYPE)

    return Route(path, metrics, methods=["GET"])


@dataclass
class _Family:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    lines: list[str] = field(default_factory=list)


def render(data: MetricsData | None) -> str:
    families: dict[str, _Family] = {}
    targets: dict[str, None] = {}  # target_info lines, deduplicated, in order
    skipped: set[str] = set()
    for resource_metrics in data.resource_metrics if data is not None else ():
        resource = dict(resource_metrics.resource.attributes)
        if resource:
            targets[f"target_info{_labels(resource)} 1"] = None
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            scope_labels = {"otel_scope_name": scope.name, "otel_scope_version": scope.version or ""}
            for metric in scope_metrics.metrics:
                kind = _kind(metric.data)
                if kind is None:
                    skipped.add(metric.name)
                    continue
                name = metric_name(metric.name, metric.unit or "", kind)
                family = families.setdefault(name, _Family(name, kind, metric.description or ""))
                if family.kind != kind:
                    skipped.add(metric.name)
                    continue
                for point in metric.data.data_points:
                    family.lines.extend(_samples(name, kind, point, scope_labels))
    if skipped:
        log.debug("prometheus: left out %s (no 0.0.4 form, or a name taken by another type)", sorted(skipped))
    out: list[str] = []
    if targets:
        out += ["# HELP target_info Target metadata", "# TYPE target_info gauge", *targets]
    for family in families.values():
        if family.help:
            out.append(f"# HELP {family.name} {_escape_help(family.help)}")
        out.append(f"# TYPE {family.name} {family.kind}")
        out.extend(family.lines)
    return "\n".join(out) + "\n" if out else ""


def _kind(data: Any) -> str | None:
    if isinstance(data, Sum):
        return "counter" if data.is_monotonic else "gauge"
    if isinstance(data, Gauge):
        return "gauge"
    if isinstance(data, HistogramData):
        return "histogram"
    return None  # exponential histograms


def metric_name(name: str, unit: str, kind: str) -> str:
    base = _collapse(_NAME_INVALID.sub("_", name))
    if base[:1].isdigit():
        base = "_" + base
    suffix = unit_suffix(unit, kind)
    if suffix and not base.lower().endswith("_" + suffix.lower()):
        base = f"{base}_{suffix}"
    if kind == "counter" and not base.endswith("_total"):
        base += "_total"
    return base


def unit_suffix(unit: str, kind: str) -> str:
    """The unit as a name suffix: UCUM words, annotations in braces dropped, `a/b` as `a_per_b`."""
    unit = _ANNOTATION.sub("", unit).strip()
    if not unit:
        return ""
    if unit == "1":
        return "ratio" if kind == "gauge" else ""
    if "/" in unit:
        top, _, bottom = unit.partition("/")
        words = [UNITS.get(top, top), "per", PER_UNITS.get(bottom, bottom)] if top else ["per", bottom]
        return _collapse(_LABEL_INVALID.sub("_", "_".join(words))).strip("_")
    return _collapse(_LABEL_INVALID.sub("_", UNITS.get(unit, unit))).strip("_")


def label_name(key: str) -> str:
    name = _collapse(_LABEL_INVALID.sub("_", key))
    return "key_" + name if name[:1].isdigit() else name


def _collapse(text: str) -> str:
    return re.sub(r"__+", "_", text)


def _samples(name: str, kind: str, point: Any, scope: Mapping[str, str]) -> Iterable[str]:
    attributes = {**dict(point.attributes or {}), **scope}
    if kind != "histogram":
        yield f"{name}{_labels(attributes)} {_number(point.value)}"
        return
    cumulative = 0
    for bound, count in zip(point.explicit_bounds, point.bucket_counts, strict=False):
        cumulative += count
        yield f"{name}_bucket{_labels(attributes, le=_number(float(bound)))} {cumulative}"
    yield f"{name}_bucket{_labels(attributes, le='+Inf')} {point.count}"
    yield f"{name}_sum{_labels(attributes)} {_number(point.sum)}"
    yield f"{name}_count{_labels(attributes)} {point.count}"


def _labels(attributes: Mapping[str, Any], *, le: str | None = None) -> str:
    # Keys that sanitise to one label name keep every value, joined in the order of their original keys.
    merged: dict[str, list[tuple[str, str]]] = {}
    for key, value in attributes.items():
        merged.setdefault(label_name(str(key)), []).append((str(key), _label_value(value)))
    pairs = {name: ";".join(v for _, v in sorted(values)) for name, values in merged.items()}
    if le is not None:
        pairs["le"] = le
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape_label(value)}"' for name, value in pairs.items()) + "}"


def _label_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, list | tuple):
        return json.dumps(list(value), separators=(",", ":"))
    return str(value)


def _number(value: float) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
