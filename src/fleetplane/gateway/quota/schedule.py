"""Which limits are in force at a moment: a quota's schedule, evaluated at admission in its time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fleetplane.manifests.limits import WEEKDAYS, QuotaLimits, Schedule, ScheduleRule


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _matches(rule: ScheduleRule, weekday: str, previous_day: str, minute: int) -> bool:
    start, end = _minutes(rule.from_), _minutes(rule.to)
    if start < end:
        return weekday in rule.days and start <= minute < end
    if start == end:  # the whole day
        return weekday in rule.days
    # Wraps past midnight: 22:00-06:00 on fri covers fri 22:00 to sat 06:00.
    return (weekday in rule.days and minute >= start) or (previous_day in rule.days and minute < end)


def limits_in_force(
    base: QuotaLimits, schedule: Schedule | None, wall: float
) -> tuple[QuotaLimits, int | None]:
    """The limits at `wall` (UNIX seconds) and the index of the schedule rule in force (None: the base)."""
    if schedule is None:
        return base, None
    local = datetime.fromtimestamp(wall, ZoneInfo(schedule.time_zone))
    weekday = WEEKDAYS[local.weekday()]
    previous_day = WEEKDAYS[(local.weekday() - 1) % 7]
    minute = local.hour * 60 + local.minute
    for index, rule in enumerate(schedule.rules):
        if _matches(rule, weekday, previous_day, minute):
            return base.merged(rule.limits), index
    return base, None
