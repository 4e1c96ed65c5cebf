"""The sliding window of one trigger, in process (the Lua script in `lua.py` is its twin on Redis).

A window of W seconds is kept as SLOTS slots of W/SLOTS seconds, stamped with their absolute slot
number floor(now / slot). An observation counts while its slot is one of the last SLOTS, i.e. for
between W·(SLOTS-1)/SLOTS and W seconds: a bounded memory per trigger, whatever the traffic, and an
error of at most one slot at the old edge of the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fleetplane.state.breaker.model import Kind, Trigger

SLOTS = 10


def slot_of(now: float, window: float) -> int:
    return math.floor(now / (window / SLOTS))


@dataclass
class Reading:
    value: float
    samples: float

    def passes(self, trigger: Trigger) -> bool:
        return self.samples >= trigger.min_samples and self.value > trigger.threshold


@dataclass
class SlotWindow:
    window: float
    stamps: list[int] = field(default_factory=lambda: [-1] * SLOTS)
    values: list[float] = field(default_factory=lambda: [0.0] * SLOTS)
    samples: list[float] = field(default_factory=lambda: [0.0] * SLOTS)

    def add(self, now: float, kind: Kind, amount: float, bad: bool, sample: float) -> None:
        k = slot_of(now, self.window)
        j = k % SLOTS
        if self.stamps[j] != k:
            self.stamps[j], self.values[j], self.samples[j] = k, 0.0, 0.0
        if kind == "sum":
            self.values[j] += amount
        elif kind == "max":
            self.values[j] = max(self.values[j], amount)
        elif bad:
            self.values[j] += sample
        self.samples[j] += sample

    def read(self, now: float, kind: Kind) -> Reading:
        k = slot_of(now, self.window)
        value = samples = 0.0
        for j in range(SLOTS):
            # A stamp ahead of now (the wall clock stepped back) is not counted: forgetting errs open.
            if not (k - SLOTS < self.stamps[j] <= k):
                continue
            samples += self.samples[j]
            value = max(value, self.values[j]) if kind == "max" else value + self.values[j]
        if kind == "ratio":
            value = value / samples if samples > 0 else 0.0
        return Reading(value, samples)
