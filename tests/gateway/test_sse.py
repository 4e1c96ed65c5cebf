from __future__ import annotations

import pytest

from fleetplane.gateway.sse import SSEEvent, SSEParser, encode_event

ANTHROPIC_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start"}\n'
    b"\n"
    b": keep-alive comment\n"
    b"event: ping\n"
    b'data: {"type": "ping"}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"text":"h\xc3\xa9llo"}\n'
    b"\n"
)
ANTHROPIC_EVENTS = [
    SSEEvent(event="message_start", data='{"type":"message_start"}'),
    SSEEvent(event="ping", data='{"type": "ping"}'),
    SSEEvent(event="content_block_delta", data='{"text":"héllo"}'),
]


def parse_all(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.finish()


def test_parses_named_events_and_skips_comments() -> None:
    assert parse_all([ANTHROPIC_STREAM]) == ANTHROPIC_EVENTS


def test_openai_style_events_have_no_name() -> None:
    stream = b'data: {"a":1}\n\ndata: [DONE]\n\n'
    assert parse_all([stream]) == [SSEEvent(data='{"a":1}'), SSEEvent(data="[DONE]")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_gives_the_same_events(newline: bytes) -> None:
    stream = ANTHROPIC_STREAM.replace(b"\n", newline)
    assert parse_all([stream]) == ANTHROPIC_EVENTS


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_split_at_every_byte_offset_gives_the_same_events(newline: bytes) -> None:
    stream = b"\xef\xbb\xbf" + ANTHROPIC_STREAM.replace(b"\n", newline) + b"data: a\ndata: b"
    expected = [*ANTHROPIC_EVENTS, SSEEvent(data="a\nb")]
    for cut in range(len(stream) + 1):
        assert parse_all([stream[:cut], stream[cut:]]) == expected, cut
    assert parse_all([stream[i : i + 1] for i in range(len(stream))]) == expected


def test_multi_line_data_joins_with_newlines() -> None:
    assert parse_all([b"data: one\ndata:two\ndata\ndata:  four\n\n"]) == [SSEEvent(data="one\ntwo\n\n four")]


def test_block_without_data_dispatches_nothing_and_resets_the_name() -> None:
    stream = b"event: lonely\n\ndata: x\n\nid: 7\nretry: 10\nfoo: bar\ndata: y\n\n"
    assert parse_all([stream]) == [SSEEvent(data="x"), SSEEvent(data="y")]


def test_empty_data_line_dispatches_an_empty_event() -> None:
    assert parse_all([b"event: e\ndata:\n\n"]) == [SSEEvent(event="e", data="")]


def test_finish_flushes_a_trailing_event_without_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: message_stop\ndata: {}\n") == []
    assert parser.finish() == [SSEEvent(event="message_stop", data="{}")]
    assert parser.finish() == []


def test_finish_flushes_a_last_line_without_terminator() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]") == []
    assert parser.finish() == [SSEEvent(data="[DONE]")]


def test_finish_treats_a_held_carriage_return_as_a_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: x\r") == []
    assert parser.finish() == [SSEEvent(data="x")]


def test_bom_is_stripped_only_at_the_start() -> None:
    assert parse_all([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]) == [SSEEvent(data="x")]
    assert parse_all([b"data: \xef\xbb\xbfx\n\n"]) == [SSEEvent(data="\ufeffx")]


def test_invalid_utf8_is_replaced() -> None:
    assert parse_all([b"data: \xff\n\n"]) == [SSEEvent(data="\ufffd")]


def test_encode_openai_style() -> None:
    assert encode_event(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_event("[DONE]") == b"data: [DONE]\n\n"


def test_encode_anthropic_style() -> None:
    assert encode_event(b"{}", "message_stop") == b"event: message_stop\ndata: {}\n\n"


def test_encode_splits_multi_line_data() -> None:
    assert encode_event("a\nb\r\nc", "e") == b"event: e\ndata: a\ndata: b\ndata: c\n\n"


def test_encode_refuses_an_event_name_with_a_line_break() -> None:
    with pytest.raises(ValueError, match="line break"):
        encode_event("x", "a\nb")


@pytest.mark.parametrize(
    "event",
    [
        SSEEvent(data="x"),
        SSEEvent(event="n", data=""),
        SSEEvent(event="n", data="a\n\nb"),
        SSEEvent(data=" lead"),
    ],
)
def test_encode_then_parse_round_trips(event: SSEEvent) -> None:
    assert parse_all([encode_event(event.data, event.event)]) == [event]
