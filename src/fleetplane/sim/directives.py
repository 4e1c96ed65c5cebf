"""Per-request overrides written into the last user message: `[[sim key=value ...]]`.

They live in the message text so they pass through any gateway untouched. Keys:

- `output_tokens=N`  reply with exactly N tokens (still capped by the request's max tokens)
- `ttft_ms=MS`       time to first token
- `tps=N`            tokens per second (0 = instant)
- `status=CODE`      answer with this HTTP error, in the provider's error shape
- `retry_after=S`    `retry-after` seconds sent with that error
- `hang_after=N`     stream N content chunks, then send nothing more but keep the connection open
- `truncate_after=N` stream N content chunks, then drop the connection without a final event
- `tool=NAME`        call this tool (one of the request's tools) unless the last message is a tool result

Several directives in one message merge, later keys winning. An unknown key or a bad value is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

_BLOCK = re.compile(r"\[\[sim\b([^\]]*)\]\]")
_PAIR = re.compile(r"^([a-z_]+)=(\S+)$")


class DirectiveError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Directives:
    output_tokens: int | None = None
    ttft_ms: float | None = None
    tps: float | None = None
    status: int | None = None
    retry_after: int | None = None
    hang_after: int | None = None
    truncate_after: int | None = None
    tool: str | None = None


NONE = Directives()


def _count(key: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise DirectiveError(f"sim directive {key}={raw}: expected a whole number") from None
    if value < 0:
        raise DirectiveError(f"sim directive {key}={raw}: expected a number >= 0")
    return value


def _amount(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise DirectiveError(f"sim directive {key}={raw}: expected a number") from None
    if not value >= 0:
        raise DirectiveError(f"sim directive {key}={raw}: expected a number >= 0")
    return value


def _status(key: str, raw: str) -> int:
    value = _count(key, raw)
    if not 400 <= value <= 599:
        raise DirectiveError(f"sim directive {key}={raw}: expected an HTTP error status (400-599)")
    return value


_PARSERS: dict[str, Any] = {
    "output_tokens": _count,
    "ttft_ms": _amount,
    "tps": _amount,
    "status": _status,
    "retry_after": _count,
    "hang_after": _count,
    "truncate_after": _count,
    "tool": lambda key, raw: raw,
}


def parse(text: str) -> Directives:
    if "[[sim" not in text:
        return NONE
    found = NONE
    for block in _BLOCK.finditer(text):
        values: dict[str, Any] = {}
        for token in block.group(1).split():
            pair = _PAIR.match(token)
            if pair is None:
                raise DirectiveError(f"sim directive {token!r}: expected key=value")
            key, raw = pair.groups()
            parser = _PARSERS.get(key)
            if parser is None:
                known = ", ".join(_PARSERS)
                raise DirectiveError(f"sim directive key {key!r} is unknown (known: {known})")
            values[key] = parser(key, raw)
        found = replace(found, **values)
    return found


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") in ("text", "input_text")
        )
    return ""


def last_user_text(messages: Any) -> str:
    """The text of the last `user` message, in either API's content shape."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""
