"""Reasons in words: what an operator reads in a refusal, the same on every replica and both stores.

The store keeps the numbers of a trip (`TripRecord`); the words are made here when they are read, so
the Lua script does no formatting and a wording change needs no migration.
"""

from __future__ import annotations

from fleetplane.state.breaker.model import TripRecord


def _window(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}min"
    return f"{seconds:g}s"


def _count(value: float) -> str:
    # Two decimals at most (a weighted sample, a ratio times a count), trailing zeros dropped.
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _dollars(amount: float) -> str:
    # Cents for budgets set in dollars; significant digits for the tiny ones of tests and cheap models.
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.2g}"


def describe(record: TripRecord) -> str:
    """The condition that tripped, e.g. "cost velocity $6.20/min > $5.00/min"."""
    name, value, threshold, window = record.trigger, record.value, record.threshold, record.window
    if name == "cost-velocity" and record.kind == "sum":
        # A sum of dollars over the window, shown as the rate per minute the manifest speaks in.
        per_minute = 60.0 / window
        return f"cost velocity {_dollars(value * per_minute)}/min > {_dollars(threshold * per_minute)}/min"
    if name == "repeats" and record.kind == "max":
        # One fingerprint's count in its window: the agent sent the very same request again and again.
        return f"the same request {_count(value)} times in {_window(window)} > {_count(threshold)}"
    if name == "repeats" and record.kind == "sum":
        return f"repeats: {_count(value)} in {_window(window)} > {_count(threshold)}"
    if name.startswith("context") and record.kind == "max":
        return f"{name.replace('-', ' ')}: {_count(value)} tokens > {_count(threshold)}"
    label = name.replace("-", " ")
    if record.kind == "ratio":
        bad = _count(value * record.samples)
        return (
            f"{label} {value:.0%} > {threshold:.0%} ({bad} of {_count(record.samples)} in {_window(window)})"
        )
    if record.kind == "max":
        return f"{label} {value:g} > {threshold:g}"
    return f"{label} {value:g} in {_window(window)} > {threshold:g}"


def reason(record: TripRecord) -> str:
    if record.cause == "probe":
        return f"half-open probe failed; opened for {describe(record)}"
    return describe(record)
