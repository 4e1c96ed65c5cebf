"""What makes two requests "the same" (a loop) and two requests one conversation (context growth)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

# Fields that change nothing about what is asked: sampling noise, bookkeeping, transport.
_IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "seed", "temperature", "top_p", "n"})


def request_fingerprint(model: str, body: Mapping[str, Any]) -> str:
    """The model, messages (or system+messages), and tools, with keys sorted; sampling knobs ignored."""
    relevant = {k: v for k, v in body.items() if k not in _IGNORED and k != "model"}
    digest = hashlib.sha256(model.encode() + b"\0")
    digest.update(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()[:32]


def conversation_id(model: str, body: Mapping[str, Any], header: str | None) -> str:
    """The client's own id when it sends one (`x-fleetplane-conversation-id`); otherwise derived from
    what a conversation keeps as it grows: the model, the system prompt and the first user message."""
    if header:
        return "h:" + header[:200]
    messages = body.get("messages") or []
    head: list[Any] = [body.get("system")]
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, Mapping) and message.get("role") in ("system", "developer"):
            head.append(message.get("content"))
            continue
        head.append(message.get("content") if isinstance(message, Mapping) else message)
        break
    digest = hashlib.sha256(model.encode() + b"\0" + orjson.dumps(head, option=orjson.OPT_SORT_KEYS))
    return "d:" + digest.hexdigest()[:32]
