"""Offline token counting.

The vocabulary ships inside the `bpe-openai` wheel, so nothing downloads at run time. Counts are an
estimate for admission and for streams whose provider reported no usage; a provider's reported usage
always wins when the call is reconciled.

`FLEETPLANE_TOKENIZER` picks the encoding (`o200k_base` by default, `cl100k_base`, or `estimate`, a
vocabulary-free upper-bound heuristic that costs no memory). The encoding loads on first use because it
costs ~100 MB of memory.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Protocol

import orjson

# OpenAI's chat format spends a few tokens per message on role markers and priming the reply; these are
# the published constants for the gpt-4o/gpt-4 families.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# An image's cost depends on its size and detail, which a gateway does not decode: count a high-detail
# 1024x1024 image, a conservative middle.
TOKENS_PER_IMAGE = 765


class Tokenizer(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class BpeTokenizer:
    def __init__(self, encoding: str) -> None:
        import bpe_openai

        self.name = encoding
        self._encoding = bpe_openai.get_encoding(encoding)

    def count(self, text: str) -> int:
        if not text:
            return 0
        return len(self._encoding.encode_ordinary(text))


class EstimateTokenizer:
    """An upper-bound estimate without a vocabulary: one token per 3 bytes of UTF-8, at least one per word."""

    name = "estimate"

    def count(self, text: str) -> int:
        if not text:
            return 0
        return max(math.ceil(len(text.encode()) / 3), len(text.split()))


_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(name: str) -> Tokenizer:
    with _lock:
        if name == "estimate":
            return EstimateTokenizer()
        return BpeTokenizer(name)


def tokenizer(name: str | None = None) -> Tokenizer:
    return _load(name or os.environ.get("FLEETPLANE_TOKENIZER", "o200k_base"))


def count_text(text: str, *, encoding: str | None = None) -> int:
    return tokenizer(encoding).count(text)


def _content_tokens(content: Any, tok: Tokenizer) -> int:
    """Count one message's content in either API's shape (a string or a list of typed parts)."""
    if content is None:
        return 0
    if isinstance(content, str):
        return tok.count(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, str):
                total += tok.count(part)
            elif isinstance(part, Mapping):
                total += _part_tokens(part, tok)
        return total
    return tok.count(orjson.dumps(content).decode())


def _part_tokens(part: Mapping[str, Any], tok: Tokenizer) -> int:
    kind = part.get("type")
    if kind in ("text", "input_text", "output_text"):
        return tok.count(str(part.get("text", "")))
    if kind in ("image_url", "image", "input_image"):
        return TOKENS_PER_IMAGE
    if kind == "tool_use":
        return tok.count(str(part.get("name", ""))) + tok.count(orjson.dumps(part.get("input", {})).decode())
    if kind == "tool_result":
        return _content_tokens(part.get("content"), tok)
    if kind in ("thinking", "redacted_thinking"):
        return tok.count(str(part.get("thinking", part.get("data", ""))))
    return tok.count(orjson.dumps(part).decode())


def _tools_tokens(tools: Iterable[Any] | None, tok: Tokenizer) -> int:
    if not tools:
        return 0
    return sum(tok.count(orjson.dumps(t).decode()) for t in tools)


def count_openai_chat(body: Mapping[str, Any], *, encoding: str | None = None) -> int:
    """Input tokens of an OpenAI Chat Completions request body."""
    tok = tokenizer(encoding)
    total = REPLY_PRIMING
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        total += TOKENS_PER_MESSAGE + tok.count(str(message.get("role", "")))
        total += _content_tokens(message.get("content"), tok)
        if message.get("name"):
            total += TOKENS_PER_NAME + tok.count(str(message["name"]))
        for call in message.get("tool_calls") or ():
            fn = call.get("function", {}) if isinstance(call, Mapping) else {}
            total += tok.count(str(fn.get("name", ""))) + tok.count(str(fn.get("arguments", "")))
    return total + _tools_tokens(body.get("tools"), tok)


def count_anthropic_messages(body: Mapping[str, Any], *, encoding: str | None = None) -> int:
    """Input tokens of an Anthropic Messages request body."""
    tok = tokenizer(encoding)
    total = REPLY_PRIMING + _content_tokens(body.get("system"), tok)
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        total += TOKENS_PER_MESSAGE + _content_tokens(message.get("content"), tok)
    return total + _tools_tokens(body.get("tools"), tok)


def count_embedding_input(value: Any, *, encoding: str | None = None) -> int:
    """Tokens of an Embeddings `input`: a string, a list of strings, or pre-tokenized integer arrays."""
    tok = tokenizer(encoding)
    if isinstance(value, str):
        return tok.count(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(count_embedding_input(v, encoding=encoding) for v in value)
    return 0
