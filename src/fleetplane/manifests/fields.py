"""Field types shared by the kinds: names, durations, secret references, prices."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class FieldError(ValueError):
    """A validator's complaint in the terms the loader prints.

    `at` names the field it is about, relative to the object validated (a model validator can then point
    at the offending line instead of the whole mapping); `expected` says what a good value looks like and
    makes the loader print "found X; expected Y"; `show_value=False` keeps a value (a secret) out of
    messages.
    """

    def __init__(
        self,
        problem: str = "",
        *,
        at: Sequence[str | int] = (),
        expected: str | None = None,
        show_value: bool = True,
    ) -> None:
        message = problem or f"expected {expected}"
        if at:
            message = (
                "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in at).lstrip(".") + ": " + message
            )
        super().__init__(message)
        self.problem = problem
        self.at = tuple(at)
        self.expected = expected
        self.show_value = show_value


class Strict(BaseModel):
    """Every manifest object: camelCase keys in YAML, snake_case in Python, unknown keys refused."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        str_strip_whitespace=True,
    )


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise FieldError(
            expected="a name of 1-63 lowercase letters, digits or '-', starting and ending with a letter "
            "or digit"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]


_DURATION_EXPECTED = "a duration: a number of seconds or a string like '500ms', '30s', '5m', '1h30m', '2d'"


def parse_duration(value: Any) -> Any:
    """Accept seconds as a number or a Go-style duration string ('500ms', '30s', '5m', '1h30m', '2d')."""
    if isinstance(value, bool):
        raise FieldError(expected=_DURATION_EXPECTED)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _DURATION_RE.match(text):
            return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        try:
            return float(text)
        except ValueError:
            pass
    raise FieldError(expected=_DURATION_EXPECTED)


def _non_negative(value: float) -> float:
    if value < 0:
        raise FieldError(expected="a duration of 0 or more")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_non_negative)]


class SecretRef(Strict):
    """Where a secret lives: an environment variable or a file. Never the secret itself."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline(cls, data: Any) -> Any:
        if isinstance(data, str | int | float):
            # Never echo the value: it may be the very secret that must not be in the file.
            raise FieldError(
                "a secret may not be written inline",
                expected="a reference: {env: VARIABLE} or {file: PATH}",
                show_value=False,
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise FieldError(expected="exactly one of 'env' or 'file'")
        return self


class Price(Strict):
    """US dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
