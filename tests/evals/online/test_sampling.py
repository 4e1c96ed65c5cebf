"""The production sample: deterministic across processes, nested across rates, at the configured rate, and
the rules that decide which traffic it is drawn from."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import pytest

from fleetplane.evals.online.sampling import SamplingRule, in_sample, rule_for, sample_fraction
from fleetplane.telemetry.records import SpanRecord

IDS = [f"{i:032x}" for i in range(20_000)]


def test_another_process_computes_the_same_sample() -> None:
    ids = IDS[:500]
    script = (
        "import sys\n"
        "from fleetplane.evals.online.sampling import in_sample, sample_fraction\n"
        "ids = sys.stdin.read().split()\n"
        "print(''.join('1' if in_sample(t, 0.07) else '0' for t in ids))\n"
        "print(repr(sample_fraction(ids[0])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=" ".join(ids),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    bits, first = done.stdout.split()
    assert bits == "".join("1" if in_sample(t, 0.07) else "0" for t in ids)
    assert float(first) == sample_fraction(ids[0])
    assert "1" in bits and "0" in bits


def test_samples_are_nested_across_rates() -> None:
    rates = [0.01, 0.05, 0.10, 0.5, 1.0]
    samples = [{t for t in IDS if in_sample(t, r)} for r in rates]
    for smaller, larger in itertools.pairwise(samples):
        assert smaller < larger
    assert samples[-1] == set(IDS)
    assert not any(in_sample(t, 0.0) for t in IDS[:1000])


def test_rate_five_percent_of_20000_lands_in_the_binomial_interval() -> None:
    n, p = len(IDS), 0.05
    hits = sum(in_sample(t, p) for t in IDS)
    sd = math.sqrt(n * p * (1 - p))
    assert n * p - 4 * sd <= hits <= n * p + 4 * sd  # 1000 ± 123: fails with probability ~6e-5


def test_the_value_is_the_same_for_upper_and_lower_case_ids() -> None:
    trace = "4BF92F3577B34DA6A3CE929D0E0E4736"
    assert sample_fraction(trace) == sample_fraction(trace.lower())
    assert 0 <= sample_fraction(trace) < 1


def span(**values: str | None) -> SpanRecord:
    base = SpanRecord(
        trace_id="a" * 32,
        span_id="b" * 16,
        parent_span_id=None,
        name="chat",
        kind="client",
        start_ns=0,
        end_ns=1,
        status_code="ok",
    )
    for key, value in values.items():
        setattr(base, key, value)
    return base


def test_rules_match_by_agent_model_team_and_prompt_version_first_match_wins() -> None:
    rules = [
        SamplingRule("v7", 0.10, agent="bot", prompt_version="v7"),
        SamplingRule("bot", 0.05, agent="bot"),
        SamplingRule("fast-support", 0.02, model="fast", team="support"),
    ]
    assert rule_for(span(agent="bot", prompt_version="v7"), rules) is rules[0]
    assert rule_for(span(agent="bot", prompt_version="v6"), rules) is rules[1]
    assert rule_for(span(request_model="x", response_model="fast", team="support"), rules) is rules[2]
    assert rule_for(span(request_model="fast", team="sales"), rules) is None


def test_a_rate_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"sampling rule 'x': rate must be in \[0, 1\], got 1.5"):
        SamplingRule("x", 1.5)
