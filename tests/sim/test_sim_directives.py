"""`[[sim key=value]]` directives in the last user message."""

from __future__ import annotations

import pytest

from fleetplane.sim.directives import NONE, DirectiveError, Directives, last_user_text, parse


def test_no_directive_is_the_common_case() -> None:
    assert parse("hello there") is NONE
    assert parse("[[simulate]] nothing") == NONE


def test_all_keys_parse() -> None:
    found = parse(
        "please [[sim output_tokens=12 ttft_ms=250.5 tps=0 status=503 retry_after=3 hang_after=2 "
        "truncate_after=4 tool=get_weather]] thanks"
    )
    assert found == Directives(
        output_tokens=12,
        ttft_ms=250.5,
        tps=0.0,
        status=503,
        retry_after=3,
        hang_after=2,
        truncate_after=4,
        tool="get_weather",
    )


def test_later_directives_win() -> None:
    assert parse("[[sim output_tokens=1 tps=5]] and [[sim output_tokens=2]]") == Directives(
        output_tokens=2, tps=5.0
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[sim colour=red]]", "sim directive key 'colour' is unknown"),
        ("[[sim output_tokens=many]]", "sim directive output_tokens=many: expected a whole number"),
        ("[[sim output_tokens=-1]]", "sim directive output_tokens=-1: expected a number >= 0"),
        ("[[sim status=200]]", "sim directive status=200: expected an HTTP error status (400-599)"),
        ("[[sim ttft_ms=soon]]", "sim directive ttft_ms=soon: expected a number"),
        ("[[sim loud]]", "sim directive 'loud': expected key=value"),
    ],
)
def test_bad_directives_are_errors(text: str, message: str) -> None:
    with pytest.raises(DirectiveError) as caught:
        parse(text)
    assert str(caught.value).startswith(message)


def test_last_user_text_reads_both_content_shapes() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "image", "source": {}},
                {"type": "text", "text": "b"},
            ],
        },
        {"role": "tool", "content": "result"},
    ]
    assert last_user_text(messages) == "a b"
    assert last_user_text([{"role": "assistant", "content": "x"}]) == ""
    assert last_user_text("nonsense") == ""
