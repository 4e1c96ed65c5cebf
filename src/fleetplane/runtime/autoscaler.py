"""The autoscaler: how many replicas an agent should run, from the requests in flight per replica.

Ray Serve's rule with Kubernetes' stabilisation: the wanted count is ceil(average in flight / target),
clamped to [min, max]. A higher count is taken once more than the current count has been wanted for
`upscale_delay` (then the count wanted at that moment), a lower one once less has been wanted for
`downscale_delay` (then the highest count wanted during that delay, so one quiet second does not drop
capacity). With `scale_to_zero` an idle agent goes to 0 replicas
after the downscale delay; a request arriving then scales it to 1 at once (KEDA's activation: there is
no one to serve it otherwise), and `warm_pool` sandboxes stay started meanwhile so that first replica is
ready in the time it takes to promote one.

Time comes from an injected clock, so every delay is tested without sleeping.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from fleetplane.manifests.agent import Autoscaling, Replicas
from fleetplane.state.clock import Clock

SAMPLE_WINDOW = 3.0  # seconds of in-flight samples averaged into one reading (smooths sampling noise)


@dataclass(frozen=True)
class Scale:
    """A decision: replicas that take traffic, sandboxes kept warm beside them, and why."""

    replicas: int
    warm: int
    reason: str


def fixed_scale(replicas: Replicas) -> Scale:
    """Without autoscaling an agent runs `replicas.min` replicas (at least one)."""
    return Scale(max(1, replicas.min), 0, "fixed")


class Autoscaler:
    """One agent's scaling state: feed it in-flight readings, ask it for a decision."""

    def __init__(
        self, policy: Autoscaling, replicas: Replicas, clock: Clock, *, initial: int | None = None
    ) -> None:
        self.policy = policy
        self.replicas = replicas
        self.floor = 0 if policy.scale_to_zero else max(1, replicas.min)
        self.ceiling = max(replicas.max, self.floor)
        self.clock = clock
        start = replicas.min if initial is None else initial
        self.current = min(max(start, self.floor), self.ceiling)
        self._samples: deque[tuple[float, float]] = deque()
        # A pending move: since when the wanted count has stayed above (or below) the current one, and
        # for a scale-down the highest count wanted during that time.
        self._up_since: float | None = None
        self._down_since: float | None = None
        self._down_to = 0

    def observe(self, in_flight: float) -> None:
        """A reading of the requests in flight to the agent (all replicas together)."""
        now = self.clock.monotonic()
        self._samples.append((now, float(in_flight)))
        while self._samples and self._samples[0][0] < now - SAMPLE_WINDOW:
            self._samples.popleft()

    def average(self) -> float:
        if not self._samples:
            return 0.0
        return sum(v for _, v in self._samples) / len(self._samples)

    def wanted(self) -> int:
        """The count the readings ask for, before any delay."""
        load = self.average()
        count = math.ceil(load / self.policy.target_in_flight - 1e-9) if load > 0 else 0
        if self._samples and self._samples[-1][1] > 0:
            count = max(count, 1)  # something is in flight right now: never zero
        return min(max(count, self.floor), self.ceiling)

    def decide(self) -> Scale:
        now = self.clock.monotonic()
        wanted = self.wanted()
        if wanted > self.current:
            self._down_since = None
            if self.current == 0:
                return self._move(wanted, "scale from zero: a request is waiting")
            if self._up_since is None:
                self._up_since = now
            if now - self._up_since >= self.policy.upscale_delay:
                target = self.policy.target_in_flight
                return self._move(wanted, f"in flight {self.average():.1f}, target {target:g} per replica")
        elif wanted < self.current:
            self._up_since = None
            if self._down_since is None:
                self._down_since, self._down_to = now, wanted
            self._down_to = max(self._down_to, wanted)
            if now - self._down_since >= self.policy.downscale_delay:
                load = self.average()
                reason = "idle" if load == 0 else f"in flight {load:.1f} under target"
                return self._move(self._down_to, reason)
        else:
            self._up_since = self._down_since = None
        return Scale(self.current, self._warm(), "steady")

    def _move(self, count: int, reason: str) -> Scale:
        self.current = count
        self._up_since = self._down_since = None
        return Scale(count, self._warm(), reason)

    def _warm(self) -> int:
        # Warm sandboxes matter only while nothing serves: the first request promotes one.
        return self.policy.warm_pool if self.current == 0 else 0
