"""Field types shared by the kinds: names, durations, secret references, prices."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Strict(BaseModel):
    """Every manifest object: camelCase keys in YAML, snake_case in Python, unknown keys refused."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, str_strip_whitespace=True
    )


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(
            "a name must be 1-63 characters of lowercase letters, digits and '-', starting and ending "
            "with a letter or digit"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]


def parse_duration(value: Any) -> Any:
    """Accept seconds as a number or a Go-style duration string ('500ms', '30s', '5m', '1h30m', '2d')."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '30s', '5m', '1h'")
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
    raise ValueError("a duration must be a number of seconds or a string like '30s', '5m', '1h'")


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError("a duration cannot be negative")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_non_negative)]


class SecretRef(Strict):
    """Where a secret lives: an environment variable or a file. Never the secret itself."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline(cls, data: Any) -> Any:
        if isinstance(data, str):
            raise ValueError(
                "a secret may not be written inline; reference it with {env: VARIABLE} or {file: PATH}"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self


class Price(Strict):
    """US dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
