"""Which production traffic is judged: sampling rules, and the deterministic nested hash sample.

A trace's place in [0, 1) is the first 63 bits of sha256 over its id, read as a fraction (telemetry's
`sample_fraction`, the same key the span store indexes, so `SpanStore.sample(rate=...)` selects the same
traces in SQL). A trace is in the sample at rate r iff that fraction is below r: every scorer and every
process sees the same value, a sample at 5% sits inside the one at 10%, and raising a rule's rate only
adds traces. Rules match spans by agent, model (requested or answering), prompt name/version and team;
the first rule that matches a span is its rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetplane.telemetry.records import SpanRecord
from fleetplane.telemetry.spanquery import sample_fraction
from fleetplane.telemetry.usagequery import sampled

__all__ = ["SamplingRule", "in_sample", "rule_for", "sample_fraction"]


def in_sample(trace_id: str, rate: float) -> bool:
    """Whether the trace is in the sample at `rate` (0 < rate <= 1); rate 0 samples nothing."""
    return rate > 0 and sampled(trace_id, rate)


@dataclass(frozen=True)
class SamplingRule:
    name: str
    rate: float  # the judge sample: 0.05-0.10 in production; cheap scorers see all matching traffic
    agent: str | None = None
    model: str | None = None
    team: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise ValueError(f"sampling rule {self.name!r}: rate must be in [0, 1], got {self.rate}")

    def matches(self, span: SpanRecord) -> bool:
        if self.model is not None and self.model not in (span.request_model, span.response_model):
            return False
        wanted = (
            (self.agent, span.agent),
            (self.team, span.team),
            (self.prompt_name, span.prompt_name),
            (self.prompt_version, span.prompt_version),
        )
        return all(want is None or want == have for want, have in wanted)

    def samples(self, trace_id: str) -> bool:
        return in_sample(trace_id, self.rate)


def rule_for(span: SpanRecord, rules: Sequence[SamplingRule]) -> SamplingRule | None:
    return next((rule for rule in rules if rule.matches(span)), None)
