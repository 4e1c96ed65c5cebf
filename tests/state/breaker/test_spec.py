"""A spec that could never work is refused when it is made, with a message naming the field."""

from __future__ import annotations

import pytest

from fleetplane.state.breaker import BreakerSpec, Trigger, open_breaker_store
from fleetplane.state.breaker.memory import MemoryBreakerStore
from fleetplane.state.breaker.model import TripRecord
from fleetplane.state.breaker.reasons import reason
from fleetplane.state.breaker.redis_store import RedisBreakerStore

OK = Trigger("repeats", window=60, threshold=5, kind="sum")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Trigger("", 60, 1, "sum"), "needs a name"),
        (lambda: Trigger("a|b", 60, 1, "sum"), "without '|'"),
        (lambda: Trigger("t", 0, 1, "sum"), "window must be a positive"),
        (lambda: Trigger("t", float("inf"), 1, "sum"), "window must be a positive"),
        (lambda: Trigger("t", 60, float("nan"), "sum"), "threshold must be a finite"),
        (lambda: Trigger("t", 60, 1, "mean"), "kind must be one of sum, ratio, max"),  # type: ignore[arg-type]
        (lambda: Trigger("t", 60, 1, "ratio", min_samples=-1), "min_samples"),
        (lambda: BreakerSpec("", (OK,), 10, 20), "needs a key"),
        (lambda: BreakerSpec("k", (), 10, 20), "no trigger"),
        (lambda: BreakerSpec("k", (OK, OK), 10, 20), "unique"),
        (lambda: BreakerSpec("k", (OK,), 0, 20), "open_for must be a positive"),
        (lambda: BreakerSpec("k", (OK,), 10, 5), "max_open_for must be at least open_for"),
        (lambda: BreakerSpec("k", (OK,), 10, 20, half_open_probes=0), "half_open_probes"),
        (lambda: BreakerSpec("k", (OK,), 10, 20, close_after=0), "close_after"),
        (lambda: BreakerSpec("k", (OK,), 10, 20, probe_timeout=0), "probe_timeout"),
    ],
)
def test_an_impossible_spec_is_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_specs_are_values() -> None:
    a = BreakerSpec("k", (OK,), 10, 20)
    assert a == BreakerSpec("k", (Trigger("repeats", 60, 5, "sum"),), 10, 20)
    assert hash(a) == hash(BreakerSpec("k", (OK,), 10, 20))
    assert a.trigger("repeats") is OK
    assert a.idle_ttl == 240  # twice the longest of window, max_open_for and probe_timeout (120)


@pytest.mark.parametrize(
    ("record", "said"),
    [
        (
            TripRecord("trigger", "cost-velocity", "sum", 6.2, 5.0, 60, 3),
            "cost velocity $6.20/min > $5.00/min",
        ),
        (TripRecord("trigger", "repeats", "sum", 7, 5, 120, 7), "repeats: 7 in 2min > 5"),
        (
            TripRecord("trigger", "context-growth", "max", 131_072, 100_000, 300, 1),
            "context growth: 131,072 tokens > 100,000",
        ),
        (
            TripRecord("trigger", "error-rate", "ratio", 0.75, 0.5, 3600, 12),
            "error rate 75% > 50% (9 of 12 in 1h)",
        ),
        (TripRecord("trigger", "latency", "max", 12.5, 10, 30, 4), "latency 12.5 > 10"),
        (TripRecord("trigger", "tool-calls", "sum", 41, 40, 90, 41), "tool calls 41 in 90s > 40"),
        (
            TripRecord("probe", "repeats", "sum", 7, 5, 60, 7),
            "half-open probe failed; opened for repeats: 7 in 1min > 5",
        ),
    ],
)
def test_reasons_read_as_an_operator_would_say_them(record: TripRecord, said: str) -> None:
    assert reason(record) == said


def test_open_breaker_store_picks_by_url() -> None:
    assert isinstance(open_breaker_store(None), MemoryBreakerStore)
    assert isinstance(open_breaker_store("redis://127.0.0.1:6379/0"), RedisBreakerStore)
