"""Server-sent events: an incremental parser for upstream streams and an encoder for client streams.

The parser follows the WHATWG event-stream rules that both providers rely on: lines end in `\\r\\n`, `\\n`
or `\\r`; `:` starts a comment; one space after the field's colon is dropped; `data` lines join with
`\\n`; a blank line dispatches the event, and a block without any `data` line dispatches nothing. `id` and
`retry` are accepted and ignored, because neither provider uses them to resume a stream.
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str | None = None


class SSEParser:
    """Turns a byte stream, cut at arbitrary offsets, into events."""

    __slots__ = ("_buffer", "_data", "_event", "_has_data", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._has_data = False
        self._started = False

    def feed(self, data: bytes) -> list[SSEEvent]:
        buffer = self._buffer + data if self._buffer else data
        if not self._started:
            # A BOM may only open the stream; wait until enough bytes arrived to tell.
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                self._buffer = buffer
                return []
            self._started = True
            if buffer.startswith(_BOM):
                buffer = buffer[len(_BOM) :]
        # A trailing `\r` may be the first half of `\r\n`: keep it until the next byte shows which.
        held = b""
        if buffer.endswith(b"\r"):
            buffer, held = buffer[:-1], b"\r"
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._buffer = lines.pop() + held
        events: list[SSEEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def finish(self) -> list[SSEEvent]:
        """Flush at end of stream: a last line without a terminator and an event without a blank line."""
        events = self.feed(b"\n") if self._buffer else []
        event = self._dispatch()
        if event is not None:
            events.append(event)
        self._started = False
        return events

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[:1] == b":":
            return None
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
            self._has_data = True
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        return None

    def _dispatch(self) -> SSEEvent | None:
        event = SSEEvent("\n".join(self._data), self._event or None) if self._has_data else None
        self._data = []
        self._event = None
        self._has_data = False
        return event


def encode_event(data: bytes | str, event: str | None = None) -> bytes:
    """One SSE frame: `data: ...\\n\\n`, preceded by `event: NAME\\n` when named (Anthropic style)."""
    payload = data.encode() if isinstance(data, str) else data
    if b"\n" in payload or b"\r" in payload:
        lines = payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        frame = b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
    else:
        frame = b"data: " + payload + b"\n\n"
    if event is None:
        return frame
    if "\n" in event or "\r" in event:
        raise ValueError("an SSE event name cannot contain a line break")
    return b"event: " + event.encode() + b"\n" + frame
