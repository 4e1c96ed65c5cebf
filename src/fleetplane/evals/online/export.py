"""Online scores out through telemetry: a `gen_ai.evaluation.result` event per score, attached to the
evaluated span's trace, and a `fleetplane.evaluation.score` histogram, so quality sits next to cost and
latency in whatever backend the fleet's telemetry goes to (the span store's events table included)."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from fleetplane.telemetry import semconv as sc

SCORE_METRIC = "fleetplane.evaluation.score"
DIMENSION = "fleetplane.evaluation.dimension"
TIER = "fleetplane.evaluation.tier"
COST = "fleetplane.evaluation.cost.usd"


class ScoreExporter:
    def __init__(self, telemetry: Any) -> None:
        self._events = telemetry.events
        self._histogram = telemetry.meter.create_histogram(
            SCORE_METRIC, unit="1", description="Online evaluation scores in [0, 1], by scorer and dimension."
        )

    def export(
        self,
        *,
        trace_id: str,
        span_id: str,
        scorer: str,
        dimension: str,
        tier: str,
        value: float,
        passed: bool | None,
        explanation: str,
        cost_usd: float,
        model: str | None,
    ) -> None:
        attributes: dict[str, Any] = {
            sc.GEN_AI_EVALUATION_NAME: scorer,
            sc.GEN_AI_EVALUATION_SCORE_VALUE: value,
            DIMENSION: dimension,
            TIER: tier,
            COST: cost_usd,
        }
        if passed is not None:
            attributes[sc.GEN_AI_EVALUATION_SCORE_LABEL] = "pass" if passed else "fail"
        if explanation:
            attributes[sc.GEN_AI_EVALUATION_EXPLANATION] = explanation[:500]
        if model:
            attributes[sc.GEN_AI_REQUEST_MODEL] = model
        context = SpanContext(
            int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
        )
        self._events.emit(
            event_name=sc.EVENT_EVALUATION_RESULT,
            context=trace.set_span_in_context(NonRecordingSpan(context)),
            attributes=attributes,
        )
        labels = {sc.GEN_AI_EVALUATION_NAME: scorer, DIMENSION: dimension, TIER: tier}
        if model:
            labels[sc.GEN_AI_REQUEST_MODEL] = model
        self._histogram.record(value, labels)
