"""Templates of the expression language: strings with `{{ expr }}` parts (a string that is one
expression evaluates to its value), conditions written either way, and JSON-like values rendered
string by string. Errors point into the whole text."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetplane.manifests.expression_values import to_text
from fleetplane.manifests.expressions import ExprError, Expression, compile_expr


@dataclass(frozen=True)
class Template:
    """A string with `{{ expr }}` parts. A string that is one expression and nothing else evaluates to
    the expression's value (a list stays a list); otherwise the parts are joined as text."""

    source: str
    parts: tuple[str | Expression, ...]

    @property
    def expressions(self) -> list[Expression]:
        return [p for p in self.parts if isinstance(p, Expression)]

    def render(self, scope: Mapping[str, Any]) -> Any:
        if len(self.parts) == 1 and isinstance(self.parts[0], Expression):
            return self.parts[0].evaluate(scope)
        return "".join(p if isinstance(p, str) else to_text(p.evaluate(scope)) for p in self.parts)


@functools.lru_cache(maxsize=4096)
def compile_template(text: str, names: frozenset[str] | None = None) -> Template:
    parts: list[str | Expression] = []
    position = 0
    while True:
        start = text.find("{{", position)
        if start < 0:
            break
        end = _closing(text, start + 2)
        if end < 0:
            raise ExprError("'{{' is not closed by '}}'", text, start + 1)
        if start > position:
            parts.append(text[position:start])
        parts.append(_shifted(text, text[start + 2 : end], start + 2, names))
        position = end + 2
    if position < len(text):
        parts.append(text[position:])
    if len(parts) == 1 and isinstance(parts[0], Expression) and text.strip() != text:
        parts = [text[: len(text) - len(text.lstrip())], parts[0], text[len(text.rstrip()) :]]
    return Template(text, tuple(parts))


def _shifted(text: str, inner: str, offset: int, names: frozenset[str] | None) -> Expression:
    """Compile the expression found at `offset` in `text`; an error points into the whole text."""
    try:
        return compile_expr(inner, names=names)
    except ExprError as exc:
        lead = len(inner) - len(inner.lstrip())
        raise ExprError(exc.message, text, offset + lead + exc.position) from None


def _closing(text: str, start: int) -> int:
    """Where `}}` closes an expression, skipping quoted strings (a '}}' inside quotes is text)."""
    quote: str | None = None
    i = start
    while i < len(text) - 1:
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif text.startswith("}}", i):
            return i
        i += 1
    return -1


@functools.lru_cache(maxsize=4096)
def compile_condition(text: str, names: frozenset[str] | None = None) -> Expression:
    """A condition is a bare expression; `{{ expr }}` is accepted too."""
    stripped = text.strip()
    if stripped.startswith("{{") and _closing(stripped, 2) == len(stripped) - 2:
        return _shifted(text, stripped[2:-2], text.index("{{") + 2, names)
    return compile_expr(text, names=names)


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """A JSON-like value with every string that holds `{{ }}` rendered."""
    if isinstance(value, str):
        return compile_template(value).render(scope) if "{{" in value else value
    if isinstance(value, dict):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, scope) for v in value]
    return value


def template_expressions(value: Any, names: frozenset[str] | None = None) -> list[Expression]:
    """Every expression in a JSON-like template value (compiling each, so errors surface)."""
    if isinstance(value, str):
        return compile_template(value, names).expressions if "{{" in value else []
    if isinstance(value, dict):
        return [e for v in value.values() for e in template_expressions(v, names)]
    if isinstance(value, list):
        return [e for v in value for e in template_expressions(v, names)]
    return []
