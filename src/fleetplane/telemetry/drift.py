"""Semantic drift: has an agent (or a prompt version) started answering differently?

"Agents fail by looking like success": nothing errors, but the outputs move. Each signal compares the
`chat` spans of a current window with those of a reference window, per agent or prompt version:

- output length: the population stability index (PSI) of output tokens over ten bins cut at the
  reference's deciles — 0 when unchanged, above 0.25 a shift worth a look (the usual rule of thumb);
- finish reasons: the total variation distance between the two distributions (0..1; above 0.2 drifted) —
  more answers cut at `length`, or suddenly calling tools, show here first;
- refusals: the change in the share of answers stopped by a content filter or refused, with a
  two-proportion z-test so a handful of samples does not cry wolf (|z| > 3);
- with an embedder (the optional embeddings extra, or any callable), the cosine distance between the
  mean embeddings of captured outputs (needs content capture on).

Signals need `min_samples` spans on each side; below that they are None and nothing is flagged.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import and_, select

from fleetplane.store.db import Store
from fleetplane.store.tables import telemetry_events, telemetry_spans

PSI_DRIFT = 0.25
TVD_DRIFT = 0.2
REFUSAL_Z = 3.0
EMBEDDING_DRIFT = 0.15
REFUSALS = frozenset({"content_filter", "refusal"})

Embedder = Callable[[Sequence[str]], Sequence[Sequence[float]]]
By = Literal["agent", "prompt_version"]


@dataclass(frozen=True)
class Sample:
    output_tokens: int | None
    finish_reasons: tuple[str, ...]
    trace_id: str
    span_id: str


@dataclass(frozen=True)
class DriftSignal:
    subject: str
    by: str
    reference_n: int
    current_n: int
    length_psi: float | None
    finish_tvd: float | None
    refusal_delta: float | None
    refusal_z: float | None
    embedding_distance: float | None
    reasons: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.reasons)


def psi(reference: Sequence[float], current: Sequence[float], bins: int = 10) -> float:
    """Population stability index of `current` against `reference`, on the reference's quantile bins."""
    ordered = sorted(reference)
    cuts = sorted({ordered[min(len(ordered) - 1, (len(ordered) * i) // bins)] for i in range(1, bins)})

    def shares(values: Sequence[float]) -> list[float]:
        counts = [0] * (len(cuts) + 1)
        for value in values:
            counts[bisect.bisect_right(cuts, value)] += 1
        # A small floor: an empty bin on one side must not make the index infinite.
        return [max(c / len(values), 1e-4) for c in counts]

    expected, actual = shares(reference), shares(current)
    return sum((a - e) * math.log(a / e) for e, a in zip(expected, actual, strict=True))


def tvd(reference: Counter[str], current: Counter[str]) -> float:
    """Total variation distance between two categorical distributions (0 = same, 1 = disjoint)."""
    total_ref, total_cur = sum(reference.values()), sum(current.values())
    keys = set(reference) | set(current)
    return 0.5 * sum(abs(reference[k] / total_ref - current[k] / total_cur) for k in keys)


def two_proportion_z(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    pooled = (hits_a + hits_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if spread == 0:
        return 0.0
    return (hits_b / n_b - hits_a / n_a) / spread


def cosine_distance(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 1.0 - dot / norm if norm else 0.0


def _mean(vectors: Sequence[Sequence[float]]) -> list[float]:
    return [sum(column) / len(vectors) for column in zip(*vectors, strict=True)]


def compare(
    subject: str,
    by: str,
    reference: Sequence[Sample],
    current: Sequence[Sample],
    *,
    min_samples: int = 30,
    outputs: tuple[Sequence[str], Sequence[str]] | None = None,
    embedder: Embedder | None = None,
) -> DriftSignal:
    """The drift signals of one subject between two windows of samples."""
    enough = len(reference) >= min_samples and len(current) >= min_samples
    reasons: list[str] = []
    length_psi = finish = refusal_delta = refusal_z = distance = None
    if enough:
        ref_lengths = [s.output_tokens for s in reference if s.output_tokens is not None]
        cur_lengths = [s.output_tokens for s in current if s.output_tokens is not None]
        if len(ref_lengths) >= min_samples and len(cur_lengths) >= min_samples:
            length_psi = psi(ref_lengths, cur_lengths)
            if length_psi > PSI_DRIFT:
                reasons.append(f"output length PSI {length_psi:.2f} > {PSI_DRIFT}")
        ref_finish = Counter(r for s in reference for r in s.finish_reasons or ("unknown",))
        cur_finish = Counter(r for s in current for r in s.finish_reasons or ("unknown",))
        finish = tvd(ref_finish, cur_finish)
        if finish > TVD_DRIFT:
            reasons.append(f"finish reasons moved by {finish:.2f} (total variation) > {TVD_DRIFT}")
        ref_refused = sum(1 for s in reference if REFUSALS & set(s.finish_reasons))
        cur_refused = sum(1 for s in current if REFUSALS & set(s.finish_reasons))
        refusal_delta = cur_refused / len(current) - ref_refused / len(reference)
        refusal_z = two_proportion_z(ref_refused, len(reference), cur_refused, len(current))
        if abs(refusal_z) > REFUSAL_Z:
            reasons.append(f"refusal rate changed by {refusal_delta:+.1%} (z = {refusal_z:.1f})")
        if embedder is not None and outputs is not None and all(len(side) >= min_samples for side in outputs):
            before, after = (_mean(list(embedder(list(side)))) for side in outputs)
            distance = cosine_distance(before, after)
            if distance > EMBEDDING_DRIFT:
                reasons.append(f"mean output embedding moved by {distance:.2f} (cosine) > {EMBEDDING_DRIFT}")
    return DriftSignal(
        subject,
        by,
        len(reference),
        len(current),
        length_psi,
        finish,
        refusal_delta,
        refusal_z,
        distance,
        reasons,
    )


async def _samples(store: Store, by: By, since: float, until: float) -> dict[str, list[Sample]]:
    column = telemetry_spans.c.agent if by == "agent" else telemetry_spans.c.prompt_version
    query = select(
        column,
        telemetry_spans.c.output_tokens,
        telemetry_spans.c.finish_reasons,
        telemetry_spans.c.trace_id,
        telemetry_spans.c.span_id,
    ).where(
        and_(
            telemetry_spans.c.operation == "chat",
            column.is_not(None),
            telemetry_spans.c.start_ns >= int(since * 1e9),
            telemetry_spans.c.start_ns < int(until * 1e9),
        )
    )
    grouped: dict[str, list[Sample]] = {}
    async with store.engine.connect() as conn:
        for subject, output, finish, trace_id, span_id in (await conn.execute(query)).all():
            reasons = tuple(str(r) for r in finish) if isinstance(finish, list) else ()
            grouped.setdefault(str(subject), []).append(Sample(output, reasons, trace_id, span_id))
    return grouped


async def _outputs(store: Store, samples: Sequence[Sample]) -> list[str]:
    """Captured output messages of the samples' spans, when content capture was on."""
    if not samples:
        return []
    wanted = {(s.trace_id, s.span_id) for s in samples}
    traces = {s.trace_id for s in samples}
    query = select(
        telemetry_events.c.trace_id, telemetry_events.c.span_id, telemetry_events.c.attributes
    ).where(telemetry_events.c.trace_id.in_(traces))
    texts: list[str] = []
    async with store.engine.connect() as conn:
        for trace_id, span_id, attributes in (await conn.execute(query)).all():
            if (trace_id, span_id) not in wanted or not isinstance(attributes, dict):
                continue
            output = attributes.get("gen_ai.output.messages")
            if output:
                texts.append(output if isinstance(output, str) else str(output))
    return texts


async def drift(
    store: Store,
    *,
    by: By = "agent",
    reference: tuple[float, float],
    current: tuple[float, float],
    min_samples: int = 30,
    embedder: Embedder | None = None,
) -> list[DriftSignal]:
    """Drift of every agent (or prompt version) seen in both windows, most drifted first."""
    before = await _samples(store, by, *reference)
    after = await _samples(store, by, *current)
    signals = []
    for subject in sorted(set(before) | set(after)):
        ref, cur = before.get(subject, []), after.get(subject, [])
        outputs: tuple[Sequence[str], Sequence[str]] | None = None
        if embedder is not None:
            outputs = (await _outputs(store, ref), await _outputs(store, cur))
        signals.append(
            compare(subject, by, ref, cur, min_samples=min_samples, outputs=outputs, embedder=embedder)
        )
    return sorted(signals, key=lambda s: (not s.drifted, -(s.length_psi or 0.0), s.subject))


def as_dict(signal: DriftSignal) -> dict[str, Any]:
    return {
        "subject": signal.subject,
        "by": signal.by,
        "referenceSamples": signal.reference_n,
        "currentSamples": signal.current_n,
        "outputLengthPsi": signal.length_psi,
        "finishReasonTvd": signal.finish_tvd,
        "refusalDelta": signal.refusal_delta,
        "refusalZ": signal.refusal_z,
        "embeddingDistance": signal.embedding_distance,
        "drifted": signal.drifted,
        "reasons": signal.reasons,
    }
