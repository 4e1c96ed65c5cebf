"""Faults: opened at run time through `/sim/faults`, scheduled as outages in the config, or drawn per
request from a model's configured rates.

A request asks the board once; the board answers with at most one action (an error, a 429, an overload,
a hang or a truncation) plus any extra latency from `slow` faults. Runtime faults come first, in the order
they were opened, then outages, then the background rates. Time is read from the injected clock.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetplane.sim.config import FaultRates, ModelConfig, SimConfig
from fleetplane.state.clock import Clock

Mode = Literal["error", "rate_limit", "overloaded", "hang", "truncate", "slow"]
MODES: tuple[str, ...] = ("error", "rate_limit", "overloaded", "hang", "truncate", "slow")


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Action:
    mode: Literal["error", "rate_limit", "overloaded", "hang", "truncate"]
    status: int = 500
    retry_after: int | None = None
    after_chunks: int = 0


@dataclass(slots=True)
class Fault:
    id: str
    model: str
    mode: Mode
    status: int
    retry_after: int | None
    latency_ms: float
    after_chunks: int
    rate: float
    remaining: int | None
    expires_at: float | None
    applied: int = 0

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "mode": self.mode,
            "status": self.status,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "after_chunks": self.after_chunks,
            "rate": self.rate,
            "remaining": self.remaining,
            "expires_in_s": None if self.expires_at is None else round(max(0.0, self.expires_at - now), 3),
            "applied": self.applied,
        }


_DEFAULT_STATUS = {
    "error": 500,
    "rate_limit": 429,
    "overloaded": 529,
    "hang": 200,
    "truncate": 200,
    "slow": 200,
}


def _number(spec: Mapping[str, Any], key: str, default: Any, *, low: float, high: float | None = None) -> Any:
    value = spec.get(key, default)
    if value is None or value is default:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSpecError(f"{key}: expected a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise FaultSpecError(f"{key}: expected a number {bound}, got {value!r}")
    return value


@dataclass
class FaultBoard:
    config: SimConfig
    clock: Clock
    seed: int = 0
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = self.clock.monotonic()
        self._next_id = 1
        self._rng = random.Random(f"faults:{self.seed}")

    def add(self, spec: Mapping[str, Any]) -> Fault:
        unknown = set(spec) - {
            "model",
            "mode",
            "status",
            "retry_after",
            "latency_ms",
            "after_chunks",
            "rate",
            "count",
            "duration",
        }
        if unknown:
            raise FaultSpecError(f"unknown field(s): {', '.join(sorted(unknown))}")
        mode = spec.get("mode")
        if mode not in MODES:
            raise FaultSpecError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        model = spec.get("model", "*")
        if model != "*" and model not in self.config.models:
            raise FaultSpecError(f"model: {model!r} is not served here (use a model name or '*')")
        status = int(
            _number(spec, "status", _DEFAULT_STATUS[mode], low=400 if mode == "error" else 100, high=599)
        )
        duration = _number(spec, "duration", None, low=0)
        count = _number(spec, "count", None, low=1)
        fault = Fault(
            id=f"flt_{self._next_id}",
            model=model,
            mode=mode,
            status=status,
            retry_after=None
            if spec.get("retry_after") is None
            else int(_number(spec, "retry_after", 0, low=0)),
            latency_ms=float(_number(spec, "latency_ms", 1000, low=0)),
            after_chunks=int(_number(spec, "after_chunks", 0, low=0)),
            rate=float(_number(spec, "rate", 1.0, low=0, high=1)),
            remaining=None if count is None else int(count),
            expires_at=None if duration is None else self.clock.monotonic() + float(duration),
        )
        self._next_id += 1
        self.faults.append(fault)
        return fault

    def remove(self, fault_id: str) -> bool:
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        return len(self.faults) < before

    def clear(self) -> int:
        cleared = len(self.faults)
        self.faults = []
        return cleared

    def active(self) -> list[Fault]:
        now = self.clock.monotonic()
        self.faults = [
            f for f in self.faults if (f.expires_at is None or f.expires_at > now) and f.remaining != 0
        ]
        return self.faults

    def decide(self, name: str, model: ModelConfig) -> tuple[Action | None, float]:
        """The fault this request meets (if any) and the extra latency in seconds from `slow` faults."""
        extra_s = 0.0
        action: Action | None = None
        for fault in self.active() if self.faults else ():
            if fault.model not in ("*", name) or (fault.rate < 1.0 and self._rng.random() >= fault.rate):
                continue
            if fault.mode == "slow":
                extra_s += fault.latency_ms / 1000
            elif action is None:
                action = Action(fault.mode, fault.status, fault.retry_after, fault.after_chunks)
            else:
                continue
            fault.applied += 1
            if fault.remaining is not None:
                fault.remaining -= 1
        if action is None:
            action = self._outage(name) or self._background(model.faults)
        return action, extra_s

    def _outage(self, name: str) -> Action | None:
        if not self.config.outages:
            return None
        elapsed = self.clock.monotonic() - self.started
        for outage in self.config.outages:
            if outage.model in ("*", name) and outage.start_s <= elapsed < outage.start_s + outage.duration_s:
                return _status_action(outage.status, outage.retry_after)
        return None

    def _background(self, rates: FaultRates) -> Action | None:
        if not (rates.error_rate or rates.overloaded_rate or rates.hang_rate or rates.truncate_rate):
            return None
        roll = self._rng.random()
        for rate, action in (
            (rates.error_rate, Action("error", rates.error_status)),
            (rates.overloaded_rate, Action("overloaded", 529)),
            (rates.hang_rate, Action("hang", 200, None, rates.after_chunks)),
            (rates.truncate_rate, Action("truncate", 200, None, rates.after_chunks)),
        ):
            if roll < rate:
                return action
            roll -= rate
        return None


def _status_action(status: int, retry_after: int | None) -> Action:
    if status == 429:
        return Action("rate_limit", 429, retry_after)
    if status == 529:
        return Action("overloaded", 529, retry_after)
    return Action("error", status, retry_after)
