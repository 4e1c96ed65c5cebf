"""Block templates: text with `{{ expression }}` holes, `{% if %}` / `{% elif %}` / `{% else %}` /
`{% for NAME in EXPRESSION %}` blocks and `{# comments #}`, for prompts that are more than one line.

    Ticket from {{ input.customer | default('a customer') }}:
    {{ input.text }}
    {% if input.hints %}
    Hints: {{ input.hints | join(', ') }}
    {% endif %}
    {% for line in input.lines %}- {{ line }}
    {% endfor %}

Every expression is the manifests' safe expression language (`expressions.py`): the same allow-list,
filters and null-on-missing rules as a pipeline's conditions. A value is written with `to_text` (strings as
themselves, null as empty, data as JSON). A block tag or comment alone on its line takes the line with it,
so blocks can be laid out one per line without leaving blank lines behind. Every error names the line and
column of the template where it is (an error inside an expression points at the character).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetplane.manifests.expression_values import to_text
from fleetplane.manifests.expressions import ExprError, Expression, compile_expr

_OPENERS = {"{{": "}}", "{%": "%}", "{#": "#}"}
_FOR = re.compile(r"^for\s+([A-Za-z][A-Za-z0-9_]*)\s+in\s+(.+)$", re.S)
_KNOWN_TAGS = "if, elif, else, endif, for, endfor"


class TemplateError(ExprError):
    """A malformed template or a failed render, at a 1-based line and column of the template."""

    def __init__(self, message: str, source: str, offset: int) -> None:
        line = source.count("\n", 0, offset) + 1
        column = offset - (source.rfind("\n", 0, offset) + 1) + 1
        self.message = message
        self.expression = source
        self.position = offset + 1
        self.line = line
        self.column = column
        ValueError.__init__(self, f"line {line}, column {column}: {message}")


@dataclass(frozen=True)
class _Tag:
    kind: str  # text | expr | block
    text: str  # the text, or the tag's inside with blanks kept
    offset: int  # where the inside starts in the template (for text: where the text starts)


def _closing(source: str, start: int, marker: str) -> int:
    """Where `marker` closes a tag whose inside starts at `start`, skipping quoted strings; -1 if never."""
    quote: str | None = None
    i = start
    while i < len(source):
        char = source[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"" and marker != "#}":
            quote = char
        elif source.startswith(marker, i):
            return i
        i += 1
    return -1


def _split(source: str) -> list[_Tag]:
    tags: list[_Tag] = []
    pos = 0
    while True:
        found = [(i, o) for o in _OPENERS if (i := source.find(o, pos)) >= 0]
        if not found:
            break
        start, opener = min(found)
        inner = start + 2
        end = _closing(source, inner, _OPENERS[opener])
        if end < 0:
            raise TemplateError(f"'{opener}' is not closed by '{_OPENERS[opener]}'", source, start)
        after = end + 2
        cut_start, cut_end = start, after
        if opener != "{{":
            # A block tag or comment alone on its line: drop its indentation and its newline.
            line_start = source.rfind("\n", 0, start) + 1
            line_end = source.find("\n", after)
            line_end = len(source) if line_end < 0 else line_end
            if not source[line_start:start].strip() and not source[after:line_end].strip():
                cut_start, cut_end = max(line_start, pos), min(line_end + 1, len(source))
        if cut_start > pos:
            tags.append(_Tag("text", source[pos:cut_start], pos))
        if opener == "{{":
            tags.append(_Tag("expr", source[inner:end], inner))
        elif opener == "{%":
            tags.append(_Tag("block", source[inner:end], inner))
        pos = cut_end
    if pos < len(source):
        tags.append(_Tag("text", source[pos:], pos))
    return tags


Render = Callable[[Mapping[str, Any], list[str]], None]


class _Parser:
    def __init__(self, source: str, tags: list[_Tag]) -> None:
        self.source = source
        self.tags = tags
        self.pos = 0

    def fail(self, message: str, offset: int) -> TemplateError:
        return TemplateError(message, self.source, offset)

    def expression(self, text: str, offset: int, names: frozenset[str] | None) -> Expression:
        """Compile `text` found at `offset`; an error points at its character in the whole template."""
        lead = len(text) - len(text.lstrip())
        try:
            return compile_expr(text, names=names)
        except ExprError as exc:
            raise self.fail(exc.message, offset + lead + exc.position - 1) from None

    def block(
        self, until: tuple[str, ...], opening: _Tag | None, names: frozenset[str] | None
    ) -> tuple[list[Render], _Tag | None]:
        """Parts up to one of the `until` block tags (returned), or to the end when `until` is empty."""
        parts: list[Render] = []
        while self.pos < len(self.tags):
            tag = self.tags[self.pos]
            self.pos += 1
            if tag.kind == "text":
                parts.append(_literal(tag.text))
            elif tag.kind == "expr":
                parts.append(self.hole(self.expression(tag.text, tag.offset, names), tag))
            else:
                word = _word(tag)
                if word in until:
                    return parts, tag
                if word == "if":
                    parts.append(self.if_(tag, names))
                elif word == "for":
                    parts.append(self.for_(tag, names))
                else:
                    shown = tag.text.strip()
                    raise self.fail(
                        f"unknown or misplaced tag '{{% {shown} %}}' (tags: {_KNOWN_TAGS})", tag.offset
                    )
        if opening is not None:
            raise self.fail(
                f"'{{% {_word(opening)} %}}' is not closed by '{{% {until[-1]} %}}'", opening.offset
            )
        return parts, None

    def condition(self, tag: _Tag, word: str, names: frozenset[str] | None) -> Expression:
        text = tag.text.lstrip()
        rest = text[len(word) :]
        if not rest.strip():
            raise self.fail(f"'{{% {word} %}}' needs a condition", tag.offset)
        return self.expression(rest, tag.offset + (len(tag.text) - len(text)) + len(word), names)

    def if_(self, opening: _Tag, names: frozenset[str] | None) -> Render:
        branches: list[tuple[Expression | None, _Tag, list[Render]]] = []
        test: Expression | None = self.condition(opening, "if", names)
        at = opening
        while True:
            body, tag = self.block(("elif", "else", "endif"), opening, names)
            branches.append((test, at, body))
            assert tag is not None
            word = _word(tag)
            if word == "endif":
                break
            if word == "elif":
                test, at = self.condition(tag, "elif", names), tag
                continue
            body, _ = self.block(("endif",), opening, names)
            branches.append((None, tag, body))
            break

        def render(scope: Mapping[str, Any], out: list[str]) -> None:
            for condition, where, parts in branches:
                if condition is None or self.test(condition, scope, where):
                    for part in parts:
                        part(scope, out)
                    return

        return render

    def for_(self, opening: _Tag, names: frozenset[str] | None) -> Render:
        text = opening.text.strip()
        match = _FOR.match(text)
        if match is None:
            raise self.fail("expected '{% for NAME in EXPRESSION %}'", opening.offset)
        name = match.group(1)
        start = opening.offset + opening.text.index(text) + match.start(2)
        items_expr = self.expression(match.group(2), start, names)
        body, _ = self.block(("endfor",), opening, None if names is None else names | {name})

        def render(scope: Mapping[str, Any], out: list[str]) -> None:
            items = self.run(lambda: items_expr.evaluate(scope), opening)
            if items is None:
                return
            if isinstance(items, Mapping):
                items = list(items)
            if not isinstance(items, list):
                kind = "a string" if isinstance(items, str) else type(items).__name__
                raise self.fail(f"'for' needs a list, found {kind}", opening.offset)
            for item in items:
                inner = {**scope, name: item}
                for part in body:
                    part(inner, out)

        return render

    def hole(self, expression: Expression, tag: _Tag) -> Render:
        def render(scope: Mapping[str, Any], out: list[str]) -> None:
            out.append(to_text(self.run(lambda: expression.evaluate(scope), tag)))

        return render

    def test(self, condition: Expression, scope: Mapping[str, Any], tag: _Tag) -> bool:
        return bool(self.run(lambda: condition.evaluate(scope), tag))

    def run(self, work: Callable[[], Any], tag: _Tag) -> Any:
        try:
            return work()
        except TemplateError:
            raise
        except ExprError as exc:
            lead = len(tag.text) - len(tag.text.lstrip())
            raise self.fail(exc.message, tag.offset + lead) from None


def _literal(text: str) -> Render:
    def render(scope: Mapping[str, Any], out: list[str]) -> None:
        out.append(text)

    return render


def _word(tag: _Tag) -> str:
    parts = tag.text.split(None, 1)
    return parts[0] if parts else ""


@dataclass(frozen=True)
class BlockTemplate:
    source: str
    parts: tuple[Render, ...]

    def render(self, scope: Mapping[str, Any]) -> str:
        out: list[str] = []
        for part in self.parts:
            part(scope, out)
        return "".join(out)


@functools.lru_cache(maxsize=1024)
def compile_block_template(source: str, names: frozenset[str] | None = None) -> BlockTemplate:
    """Parse and check a template; `names` limits the top-level names its expressions may read."""
    parser = _Parser(source, _split(source))
    parts, _ = parser.block((), None, names)
    return BlockTemplate(source, tuple(parts))
