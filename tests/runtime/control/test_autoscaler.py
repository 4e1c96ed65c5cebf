"""The autoscaler's decisions on an injected clock: up after the upscale delay, down after the downscale
delay to the highest count wanted meanwhile, min/max, scale to zero and from zero, the warm pool."""

from __future__ import annotations

from fleetplane.manifests.agent import Autoscaling, Replicas
from fleetplane.runtime.autoscaler import Autoscaler, Scale, fixed_scale
from fleetplane.state.clock import ManualClock


def scaler(**policy: object) -> tuple[Autoscaler, ManualClock]:
    clock = ManualClock()
    defaults: dict[str, object] = {"target_in_flight": 2, "upscale_delay": 5, "downscale_delay": 30}
    replicas = policy.pop("replicas", Replicas(min=1, max=4))
    auto = Autoscaler(Autoscaling(**{**defaults, **policy}), replicas, clock)  # type: ignore[arg-type]
    return auto, clock


def step(auto: Autoscaler, clock: ManualClock, in_flight: float, seconds: float = 1.0) -> Scale:
    clock.advance(seconds)
    auto.observe(in_flight)
    return auto.decide()


def test_scales_up_only_after_the_upscale_delay() -> None:
    auto, clock = scaler()
    assert auto.current == 1
    decisions = [step(auto, clock, 7) for _ in range(6)]
    assert [d.replicas for d in decisions] == [1, 1, 1, 1, 1, 4]  # ceil(7 / 2) = 4, taken at 5 s
    assert decisions[-1].reason == "in flight 7.0, target 2 per replica"


def test_a_short_burst_does_not_scale_up() -> None:
    auto, clock = scaler()
    for _ in range(3):
        step(auto, clock, 8)
    assert [step(auto, clock, 0, 4).replicas for _ in range(3)] == [1, 1, 1]


def test_never_above_max_nor_below_min() -> None:
    auto, clock = scaler(upscale_delay=0, downscale_delay=0, replicas=Replicas(min=2, max=3))
    assert auto.current == 2
    assert step(auto, clock, 100).replicas == 3
    assert step(auto, clock, 0, 20).replicas == 2


def test_scales_down_after_the_delay_to_the_peak_wanted_meanwhile() -> None:
    auto, clock = scaler(upscale_delay=0, downscale_delay=30)
    assert step(auto, clock, 8).replicas == 4
    clock.advance(11)  # the burst leaves the averaging window
    readings = [step(auto, clock, value, 10) for value in (3, 1, 1)]
    assert [d.replicas for d in readings] == [4, 4, 4]  # wanted 2, then 1: waiting out the delay
    decision = step(auto, clock, 1, 10)
    assert (decision.replicas, decision.reason) == (2, "in flight 1.0 under target")  # the peak meanwhile: 2


def test_scale_to_zero_when_idle_and_from_zero_at_once_with_a_warm_pool() -> None:
    auto, clock = scaler(scale_to_zero=True, warm_pool=2, downscale_delay=60, replicas=Replicas(min=0, max=4))
    assert auto.current == 0 and auto.decide() == Scale(0, 2, "steady")
    woke = step(auto, clock, 1)  # a request waits: no upscale delay from zero
    assert woke == Scale(1, 0, "scale from zero: a request is waiting")
    clock.advance(11)
    assert step(auto, clock, 0).replicas == 1
    assert step(auto, clock, 0, 59).replicas == 1
    asleep = step(auto, clock, 0, 2)
    assert asleep == Scale(0, 2, "idle")


def test_without_autoscaling_the_minimum_runs() -> None:
    assert fixed_scale(Replicas(min=2, max=5)) == Scale(2, 0, "fixed")
    assert fixed_scale(Replicas(min=0, max=1)).replicas == 1
