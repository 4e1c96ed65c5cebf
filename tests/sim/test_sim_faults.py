"""The fault board: runtime faults, outage windows and background rates, on a hand-moved clock."""

from __future__ import annotations

import pytest

from fleetplane.sim.config import FaultRates, ModelConfig, Outage, SimConfig
from fleetplane.sim.faults import Action, FaultBoard, FaultSpecError
from fleetplane.state.clock import ManualClock


def board(clock: ManualClock, **config: object) -> FaultBoard:
    models = {"a": ModelConfig(), "b": ModelConfig()}
    return FaultBoard(SimConfig(models=models, **config), clock, seed=1)  # type: ignore[arg-type]


def test_an_error_fault_applies_to_its_model_until_closed() -> None:
    clock = ManualClock()
    faults = board(clock)
    fault = faults.add({"model": "a", "mode": "error", "status": 503, "retry_after": 2})
    assert fault.id == "flt_1"
    assert faults.decide("a", ModelConfig()) == (Action("error", 503, 2, 0), 0.0)
    assert faults.decide("b", ModelConfig()) == (None, 0.0)
    assert faults.remove("flt_1")
    assert not faults.remove("flt_1")
    assert faults.decide("a", ModelConfig()) == (None, 0.0)


def test_duration_and_count_end_a_fault() -> None:
    clock = ManualClock()
    faults = board(clock)
    faults.add({"mode": "rate_limit", "duration": 10})
    faults.add({"model": "b", "mode": "overloaded", "count": 2})
    assert faults.decide("a", ModelConfig())[0] == Action("rate_limit", 429, None, 0)
    clock.advance(10)
    assert faults.decide("a", ModelConfig()) == (None, 0.0)
    assert faults.decide("b", ModelConfig())[0] == Action("overloaded", 529, None, 0)
    assert faults.decide("b", ModelConfig())[0] == Action("overloaded", 529, None, 0)
    assert faults.decide("b", ModelConfig()) == (None, 0.0)
    assert faults.active() == []


def test_slow_faults_add_latency_alongside_another_fault() -> None:
    faults = board(ManualClock())
    faults.add({"mode": "slow", "latency_ms": 250})
    faults.add({"mode": "slow", "latency_ms": 500, "model": "a"})
    faults.add({"mode": "hang", "after_chunks": 3})
    assert faults.decide("a", ModelConfig()) == (Action("hang", 200, None, 3), 0.75)
    assert faults.decide("b", ModelConfig()) == (Action("hang", 200, None, 3), 0.25)


def test_first_opened_fault_wins() -> None:
    faults = board(ManualClock())
    faults.add({"mode": "truncate", "after_chunks": 1})
    faults.add({"mode": "error", "status": 500})
    assert faults.decide("a", ModelConfig())[0] == Action("truncate", 200, None, 1)


def test_fault_rate_is_seeded() -> None:
    def hits() -> int:
        faults = board(ManualClock())
        faults.add({"mode": "error", "rate": 0.25})
        return sum(faults.decide("a", ModelConfig())[0] is not None for _ in range(400))

    first = hits()
    assert first == hits()
    assert 60 < first < 140


def test_outage_windows_follow_the_clock() -> None:
    clock = ManualClock()
    outages = [
        Outage(model="a", start_s=30, duration_s=10, status=503, retry_after=5),
        Outage(start_s=100, duration_s=1, status=429),
    ]
    faults = board(clock, outages=outages)
    assert faults.decide("a", ModelConfig()) == (None, 0.0)
    clock.advance(30)
    assert faults.decide("a", ModelConfig())[0] == Action("error", 503, 5, 0)
    assert faults.decide("b", ModelConfig()) == (None, 0.0)
    clock.advance(10)
    assert faults.decide("a", ModelConfig()) == (None, 0.0)
    clock.advance(60)
    assert faults.decide("b", ModelConfig())[0] == Action("rate_limit", 429, None, 0)


def test_background_rates_are_seeded_and_proportional() -> None:
    model = ModelConfig(
        faults=FaultRates(
            error_rate=0.1, error_status=502, overloaded_rate=0.1, truncate_rate=0.1, after_chunks=2
        )
    )

    def outcomes() -> list[Action | None]:
        faults = board(ManualClock())
        return [faults.decide("a", model)[0] for _ in range(1000)]

    first = outcomes()
    assert first == outcomes()
    counts = {
        mode: sum(1 for a in first if a is not None and a.mode == mode)
        for mode in ("error", "overloaded", "truncate")
    }
    assert all(60 < n < 140 for n in counts.values()), counts
    assert Action("error", 502) in first and Action("truncate", 200, None, 2) in first


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"mode": "explode"},
            "mode: expected one of error, rate_limit, overloaded, hang, truncate, slow, got 'explode'",
        ),
        ({"mode": "error", "model": "zzz"}, "model: 'zzz' is not served here (use a model name or '*')"),
        ({"mode": "error", "status": 200}, "status: expected a number between 400 and 599, got 200"),
        ({"mode": "error", "rate": 2}, "rate: expected a number between 0 and 1, got 2"),
        ({"mode": "error", "duration": "long"}, "duration: expected a number, got 'long'"),
        ({"mode": "error", "colour": 1}, "unknown field(s): colour"),
    ],
)
def test_bad_fault_specs(spec: dict[str, object], message: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        board(ManualClock()).add(spec)
    assert str(caught.value) == message
