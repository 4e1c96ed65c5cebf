"""The values a breaker is made of: its spec (triggers and back-off), and what the store answers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["sum", "ratio", "max"]
Status = Literal["closed", "open", "half_open"]
KINDS: tuple[Kind, ...] = ("sum", "ratio", "max")


def _positive(what: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a positive number of seconds, not {value!r}")


@dataclass(frozen=True)
class Trigger:
    """One trip condition over a sliding window.

    - `sum`: the amounts observed in the window (dollars, repeat count); trips when the sum passes
      `threshold`.
    - `ratio`: bad samples / all samples in the window (error rate); `amount` is not used.
    - `max`: the largest single amount in the window (a context size).

    Every kind also counts samples (`sample`, 1 per observation by default): the trigger trips only once
    the window holds at least `min_samples` of them, so three errors out of four calls at 3 a.m. do not
    open a deployment's breaker.
    """

    name: str
    window: float
    threshold: float
    kind: Kind
    min_samples: int = 0

    def __post_init__(self) -> None:
        if not self.name or "|" in self.name:
            raise ValueError(f"a trigger needs a name without '|', not {self.name!r}")
        _positive(f"trigger {self.name!r}: window", self.window)
        if not math.isfinite(self.threshold):
            raise ValueError(f"trigger {self.name!r}: threshold must be a finite number")
        if self.kind not in KINDS:
            raise ValueError(
                f"trigger {self.name!r}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}"
            )
        if self.min_samples < 0:
            raise ValueError(f"trigger {self.name!r}: min_samples must be 0 or more")


@dataclass(frozen=True)
class BreakerSpec:
    """A breaker: a stable key (breaker name + subject), its triggers, and how it opens and recovers.

    `open_for` is the first opening; every re-trip (a failed probe, or a trip within `max_open_for` of
    the last close) doubles it, up to `max_open_for`. A half-open probe that has not reported within
    `probe_timeout` seconds gives its slot back (a crashed caller cannot wedge the breaker half-open).
    """

    key: str
    triggers: tuple[Trigger, ...]
    open_for: float
    max_open_for: float
    half_open_probes: int = 1
    close_after: int = 1
    probe_timeout: float = 120.0
    _by_name: dict[str, Trigger] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("a breaker needs a key")
        if not self.triggers:
            raise ValueError(f"breaker {self.key!r} has no trigger, so it would never trip")
        names = [t.name for t in self.triggers]
        if len(set(names)) != len(names):
            raise ValueError(f"breaker {self.key!r}: trigger names must be unique, got {names}")
        _positive(f"breaker {self.key!r}: open_for", self.open_for)
        _positive(f"breaker {self.key!r}: probe_timeout", self.probe_timeout)
        if not (math.isfinite(self.max_open_for) and self.max_open_for >= self.open_for):
            raise ValueError(f"breaker {self.key!r}: max_open_for must be at least open_for")
        if self.half_open_probes < 1 or self.close_after < 1:
            raise ValueError(f"breaker {self.key!r}: half_open_probes and close_after must be 1 or more")
        object.__setattr__(self, "_by_name", {t.name: t for t in self.triggers})

    def trigger(self, name: str) -> Trigger:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self._by_name)
            raise ValueError(f"breaker {self.key!r} has no trigger {name!r} (it has {known})") from None

    @property
    def idle_ttl(self) -> float:
        """How long an untouched breaker is kept: past every window, opening and probe lease, so
        forgetting it loses nothing but an old back-off level (which would have reset anyway)."""
        return 2 * max(max(t.window for t in self.triggers), self.max_open_for, self.probe_timeout)


@dataclass(frozen=True)
class Verdict:
    """The store's answer. `admitted`: the caller may go on (closed, or a half-open probe slot is its).

    `retry_after` is set when refused: seconds until the breaker half-opens (open), or until a probe slot
    is sure to be free (half-open). `probe` marks a half-open probe: report it once with `probe_done`.
    """

    status: Status
    admitted: bool
    reason: str | None = None
    trigger: str | None = None
    retry_after: float | None = None
    probe: bool = False


CLOSED = Verdict(status="closed", admitted=True)


@dataclass(frozen=True)
class BreakerSnapshot:
    key: str
    status: Status
    reason: str | None
    trigger: str | None
    opened_at: float | None
    retry_after: float | None
    trips: int
    values: dict[str, float]


@dataclass(frozen=True)
class TripRecord:
    """Why a breaker last opened, kept with its state so every replica can say it the same way."""

    cause: Literal["trigger", "probe"]
    trigger: str
    kind: Kind
    value: float
    threshold: float
    window: float
    samples: float


StepOp = Literal["observe", "count", "growth", "probe_done"]


@dataclass(frozen=True)
class Step:
    """One operation on a breaker inside a batch (`arrive` or `record`): one script call for many.

    - `observe`: `observe(spec, trigger, amount, bad=, sample=, probe=)` (in `arrive`, `probe` is the
      check's grant).
    - `count`: add one to the counter `member` of `trigger` (it lives `ttl` seconds from its first
      count), then observe the count — a request fingerprint seen N times.
    - `growth`: remember `amount` as `member`'s size for `ttl` seconds; when a size was remembered,
      observe how much it grew (never below 0) — a conversation's input from turn to turn.
    - `probe_done`: `probe_done(spec, good=)`.
    """

    op: StepOp
    trigger: str = ""
    amount: float = 0.0
    bad: bool = False
    sample: float = 1.0
    probe: bool = False
    good: bool = False
    member: str = ""
    ttl: float = 0.0


@dataclass(frozen=True)
class Arrived:
    """One breaker's answer in `arrive`: whether its check granted a probe, and the verdict that stands
    (the refusal, or the last observation's)."""

    probe: bool
    verdict: Verdict
