"""Quota limits: the fields a `Quota` and every tenant kind's `quota:` share, and their schedules."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, model_validator

from fleetplane.manifests.fields import FieldError, Strict

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldError(
            f"unknown time zone {value!r}", expected="an IANA time zone such as Europe/Berlin or UTC"
        ) from None
    return value


TimeZone = Annotated[str, AfterValidator(_check_zone)]


def _check_clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise FieldError(
            f"{value!r} is not a time of day", expected="HH:MM on a 24-hour clock, e.g. 09:00 or 18:30"
        )
    return value


ClockTime = Annotated[str, AfterValidator(_check_clock)]


class QuotaLimits(Strict):
    """Limits per scope. Token limits count input and output together; the input/output forms count one."""

    tpm: int | None = Field(default=None, ge=0)  # tokens per minute (the primary one)
    input_tpm: int | None = Field(default=None, ge=0)
    output_tpm: int | None = Field(default=None, ge=0)
    tph: int | None = Field(default=None, ge=0)
    tpd: int | None = Field(default=None, ge=0)
    rpm: int | None = Field(default=None, ge=0)
    concurrent: int | None = Field(default=None, ge=0)
    usd_per_day: float | None = Field(default=None, ge=0)  # calendar day in the quota's time zone
    usd_per_month: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _some_limit(self) -> QuotaLimits:
        if not self.model_fields_set:
            raise FieldError(
                "no limit is set",
                expected="at least one of tpm, inputTpm, outputTpm, tph, tpd, rpm, concurrent, "
                "usdPerDay, usdPerMonth",
            )
        return self

    def merged(self, override: QuotaLimits) -> QuotaLimits:
        """These limits with `override`'s set fields in their place."""
        return self.model_copy(update={name: getattr(override, name) for name in override.model_fields_set})


class ScheduleRule(Strict):
    """Limits in force on some days between two local times of day; `from` after `to` wraps past midnight."""

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    from_: ClockTime = Field(default="00:00", alias="from")
    to: ClockTime = "24:00"
    limits: QuotaLimits


class Schedule(Strict):
    time_zone: TimeZone = "UTC"
    rules: list[ScheduleRule] = Field(min_length=1)  # the first rule that matches the moment wins


class QuotaTarget(Strict):
    """Which requests a quota counts: those whose every named field matches. "*" means "each": one
    counter per distinct value (e.g. `agent: "*"` gives every agent its own budget)."""

    organization: str | None = None
    team: str | None = None
    user: str | None = None
    customer: str | None = None
    agent: str | None = None
    key: str | None = None
    model: str | None = None  # a model group
    deployment: str | None = None  # provider/upstream-model: counted per attempt, so a denial falls back

    @model_validator(mode="after")
    def _something(self) -> QuotaTarget:
        if not self.model_fields_set:
            raise FieldError(
                "a target names nothing",
                expected="one or more of organization, team, user, customer, agent, key, model, deployment",
            )
        if self.deployment is not None and self.deployment != "*" and "/" not in self.deployment:
            raise FieldError(
                f"{self.deployment!r} is not a deployment",
                at=("deployment",),
                expected="provider/upstream-model",
            )
        return self

    def fields(self) -> dict[str, str]:
        return {
            name: getattr(self, name) for name in self.model_fields_set if getattr(self, name) is not None
        }
