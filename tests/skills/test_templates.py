"""Block templates (`fleetplane.manifests.templates`) on the one safe expression language."""

from __future__ import annotations

import pytest

from fleetplane.manifests.expressions import ExprError
from fleetplane.manifests.templates import TemplateError, compile_block_template


def render(text: str, **scope: object) -> str:
    return compile_block_template(text).render(scope)


def test_holes_blocks_and_comments() -> None:
    text = (
        "Ticket from {{ input.customer | default('a customer') }}:\n"
        "{# not shown #}\n"
        "{% if input.hints %}\n"
        "Hints: {{ input.hints | join(', ') }}\n"
        "{% elif input.vip %}\n"
        "VIP\n"
        "{% else %}\n"
        "none\n"
        "{% endif %}\n"
        "{% for line in input.lines %}- {{ line | upper }}\n"
        "{% endfor %}end"
    )
    assert render(text, input={"hints": ["a", "b"], "lines": ["x", "y"]}) == (
        "Ticket from a customer:\nHints: a, b\n- X\n- Y\nend"
    )
    assert render(text, input={"customer": "Ann", "vip": True}) == "Ticket from Ann:\nVIP\nend"
    assert render(text, input={}) == "Ticket from a customer:\nnone\nend"


def test_values_are_written_as_text() -> None:
    assert render("{{ a }}|{{ b }}|{{ c }}|{{ d }}", a=None, b=True, c=[1, "x"], d=2.5) == '|true|[1,"x"]|2.5'
    assert render("{{ '}}' }}") == "}}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\n{% if x %}b", "line 2, column 3: '{% if %}' is not closed by '{% endif %}'"),
        ("a {{ x", "line 1, column 3: '{{' is not closed by '}}'"),
        ("{% while x %}", "line 1, column 3: unknown or misplaced tag '{% while x %}' (tags: if, elif, else, "
         "endif, for, endfor)"),
        ("x\n  {{ a.__class__ }}", "line 2, column 8: the field '__class__' is not allowed (fields starting "
         "with '_' are private)"),
        ("{% for in x %}{% endfor %}", "line 1, column 3: expected '{% for NAME in EXPRESSION %}'"),
        ("{% if %}{% endif %}", "line 1, column 3: '{% if %}' needs a condition"),
        ("{{ secret }}", "line 1, column 4: unknown name 'secret'; known names: input"),
    ],
)  # fmt: skip
def test_errors_name_line_and_column(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        compile_block_template(text, frozenset({"input"}) if "secret" in text else None)
    assert str(caught.value) == message
    assert isinstance(caught.value, ExprError)


def test_render_errors_name_the_tag() -> None:
    with pytest.raises(TemplateError) as caught:
        render("ok\n{% for x in items %}{% endfor %}", items="abc")
    assert str(caught.value) == "line 2, column 3: 'for' needs a list, found a string"
    with pytest.raises(TemplateError) as caught:
        render("{{ a + 1 }}", a="x")
    assert str(caught.value) == "line 1, column 4: cannot add a string and a number"
