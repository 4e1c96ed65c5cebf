"""Reading a scorer's parameters from a suite: typed, with the unknown and the missing named."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetplane.evals.scoring import Sample, ScorerError

_MISSING: Any = object()


_NAMES = {str: "a string", bool: "true or false", dict: "a mapping", list: "a list", int: "a whole number"}


def _describe(kinds: tuple[type, ...]) -> str:
    if float in kinds:
        return "a number"
    return " or ".join(_NAMES.get(k, k.__name__) for k in kinds)


class Params:
    """`take` each parameter a scorer knows, then `done()` refuses whatever is left."""

    def __init__(self, scorer: str, params: Mapping[str, Any]) -> None:
        self.scorer = scorer
        self._left = dict(params)

    def take(
        self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING, *, what: str = ""
    ) -> Any:
        if key not in self._left:
            if default is _MISSING:
                raise ScorerError(f"scorer {self.scorer!r} needs {key!r}", param=key)
            return default
        value = self._left.pop(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        bad_bool = isinstance(value, bool) and bool not in kinds
        if value is not None and (bad_bool or not isinstance(value, kinds)):
            names = what or _describe(kinds)
            raise ScorerError(f"scorer {self.scorer!r}: {key!r} must be {names}, found {value!r}", param=key)
        return value

    def done(self) -> None:
        if self._left:
            key = sorted(self._left)[0]
            raise ScorerError(f"scorer {self.scorer!r} has no parameter {key!r}", param=key)


def expected_value(sample: Sample, scorer: str, configured: Any) -> Any:
    """What to compare with: the case's own `vars[scorer]`, else the suite's parameter, else `expected`."""
    own = sample.vars.get(scorer)
    if isinstance(own, Mapping) and "value" in own:
        return own["value"]
    if own is not None and not isinstance(own, Mapping):
        return own
    return configured if configured is not None else sample.expected


def reference_text(sample: Sample, scorer: str, configured: Any) -> str:
    own = sample.vars.get(scorer)
    if own is not None and not isinstance(own, Mapping):
        return str(own)
    if configured is not None:
        return str(configured)
    return sample.reference_text
