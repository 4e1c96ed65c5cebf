"""Cheap heuristic scorers, fit for every production request: length bounds, refusal detection and
output format. They run in microseconds; `timed_score` measures and prices each item."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetplane.evals.scorers.params import Params
from fleetplane.evals.scoring import Sample, Score, ScorerError, Tier, register_scorer

# Phrases that open or carry a refusal in assistant answers (English); matched case-insensitively.
REFUSAL_PATTERNS = (
    r"\bI(?:'m| am) (?:sorry|afraid),? (?:but )?I (?:can(?:no|')t|cannot|am unable|won't)",
    r"\bI (?:can(?:no|')t|cannot|won't|am unable to|am not able to) (?:help|assist|comply|provide|do that)",
    r"\bI must (?:decline|refuse)",
    r"\b(?:as an ai|as a language model)\b",
    r"\bI(?:'m| am) not (?:able|allowed|permitted) to\b",
)
_REFUSAL = re.compile("|".join(REFUSAL_PATTERNS), re.IGNORECASE)


@dataclass(frozen=True)
class Length:
    minimum: int | None
    maximum: int | None
    unit: str  # chars | words
    type: str = "length"
    tier: Tier = "heuristic"

    async def score(self, sample: Sample) -> Score:
        size = len(sample.output) if self.unit == "chars" else len(sample.output.split())
        if self.minimum is not None and size < self.minimum:
            return Score(
                0.0,
                passed=False,
                explanation=f"{size} {self.unit}, fewer than {self.minimum}",
                flags=("too-short",),
            )
        if self.maximum is not None and size > self.maximum:
            return Score(
                0.0,
                passed=False,
                explanation=f"{size} {self.unit}, more than {self.maximum}",
                flags=("too-long",),
            )
        return Score(1.0, passed=True)


@register_scorer("length", "heuristic", "the answer's length is within min/max characters or words")
def _length(params: Mapping[str, Any]) -> Length:
    p = Params("length", params)
    unit = p.take("unit", str, "chars")
    if unit not in ("chars", "words"):
        raise ScorerError(f"scorer 'length': 'unit' must be chars or words, found {unit!r}", param="unit")
    scorer = Length(p.take("min", int, None), p.take("max", int, None), unit)
    p.done()
    if scorer.minimum is None and scorer.maximum is None:
        raise ScorerError("scorer 'length' needs 'min' or 'max'", param="min")
    return scorer


@dataclass(frozen=True)
class Refusal:
    expect_refusal: bool
    type: str = "refusal"
    tier: Tier = "heuristic"

    async def score(self, sample: Sample) -> Score:
        hit = _REFUSAL.search(sample.output)
        ok = bool(hit) == self.expect_refusal
        flags = ("refusal",) if hit else ()
        explanation = f"refused: {hit.group(0)!r}" if hit else "answered"
        return Score(1.0 if ok else 0.0, passed=ok, explanation=explanation, flags=flags)


@register_scorer(
    "refusal", "heuristic", "passes when the answer is not a refusal (or is, with expect: refusal)"
)
def _refusal(params: Mapping[str, Any]) -> Refusal:
    p = Params("refusal", params)
    expect = p.take("expect", str, "answer")
    if expect not in ("answer", "refusal"):
        raise ScorerError(
            f"scorer 'refusal': 'expect' must be answer or refusal, found {expect!r}", param="expect"
        )
    p.done()
    return Refusal(expect == "refusal")


_FORMATS = ("json", "json-object", "single-line", "bullet-list", "number")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")


def _format_ok(kind: str, text: str) -> bool:
    stripped = text.strip()
    if kind in ("json", "json-object"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            return False
        return kind == "json" or isinstance(data, dict)
    if kind == "single-line":
        return bool(stripped) and "\n" not in stripped
    if kind == "bullet-list":
        lines = [line for line in stripped.splitlines() if line.strip()]
        return bool(lines) and all(_BULLET.match(line) for line in lines)
    return re.fullmatch(r"[-+]?\d+(?:\.\d+)?", stripped.replace(",", "")) is not None


@dataclass(frozen=True)
class Format:
    format: str
    type: str = "format"
    tier: Tier = "heuristic"

    async def score(self, sample: Sample) -> Score:
        ok = _format_ok(self.format, sample.output)
        return Score(1.0 if ok else 0.0, passed=ok, explanation="" if ok else f"not {self.format}")


@register_scorer("format", "heuristic", "the answer has a format: " + ", ".join(_FORMATS))
def _format(params: Mapping[str, Any]) -> Format:
    p = Params("format", params)
    kind = p.take("format", str)
    if kind not in _FORMATS:
        raise ScorerError(
            f"scorer 'format': 'format' must be one of {', '.join(_FORMATS)}, found {kind!r}", param="format"
        )
    p.done()
    return Format(kind)
