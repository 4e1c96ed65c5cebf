"""Offline token counting.

The vocabulary ships inside the `bpe-openai` wheel, so nothing downloads at run time. Counts are an
estimate for admission and for streams whose provider reported no usage; a provider's reported usage
always wins when the call is reconciled.

`FLEETPLANE_TOKENIZER` picks the encoding (`o200k_base` by default, `cl100k_base`, or `estimate`, a
vocabulary-free upper-bound heuristic that costs no memory). The encoding loads on first use because it
costs ~100 MB of memory.

Counting is total: it runs where raising would lose a usage record or fail a request, so a text too long
for the tokenizer in one call is counted in pieces, and any tokenizer failure (or a body of an unexpected
shape) falls back to the estimate. No function here raises.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Protocol

import orjson

log = logging.getLogger("fleetplane.telemetry")

# OpenAI's chat format spends a few tokens per message on role markers and priming the reply; these are
# the published constants for the gpt-4o/gpt-4 families.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# An image's cost depends on its size and detail, which a gateway does not decode: count a high-detail
# 1024x1024 image, a conservative middle.
TOKENS_PER_IMAGE = 765
# `bpe-openai` refuses one call that yields more than 200,000 tokens. A piece of at most 100,000 characters
# yields at most 100,000 tokens (a token covers at least one character), so pieces of that size never hit
# the limit, whatever the text.
PIECE_CHARS = 100_000
# How far back from a piece's end to look for whitespace to cut at, so a word is not split in two.
CUT_WINDOW = 2_000


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
        try:
            return sum(len(self._encoding.encode_ordinary(piece)) for piece in pieces(text))
        except Exception as exc:  # the tokenizer's own failure must not cost the caller its record
            log.warning("%s could not count %d characters (%s); estimating", self.name, len(text), exc)
            return ESTIMATE.count(text)


def pieces(text: str, size: int = PIECE_CHARS) -> Iterable[str]:
    """`text` in consecutive pieces of at most `size` characters, cut before whitespace where there is some.

    Cutting just before a whitespace character that follows a non-space keeps the space with the next word,
    which is how the OpenAI encodings split words anyway, so the pieces' counts add up to (nearly) the whole.
    """
    start = 0
    while len(text) - start > size:
        end = start + size
        cut = end
        for i in range(end - 1, max(start, end - CUT_WINDOW), -1):
            if text[i].isspace() and not text[i - 1].isspace():
                cut = i
                break
        yield text[start:cut]
        start = cut
    yield text[start:]


class EstimateTokenizer:
    """An upper-bound estimate without a vocabulary: one token per 3 bytes of UTF-8, at least one per word."""

    name = "estimate"

    def count(self, text: str) -> int:
        if not text:
            return 0
        # surrogatepass: a lone surrogate (possible in a Python str) must not make counting raise.
        return max(math.ceil(len(text.encode("utf-8", "surrogatepass")) / 3), len(text.split()))


ESTIMATE = EstimateTokenizer()


_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(name: str) -> Tokenizer:
    with _lock:
        if name == "estimate":
            return ESTIMATE
        try:
            return BpeTokenizer(name)
        except Exception as exc:  # an unknown encoding or a broken install: count, less exactly
            log.error("tokenizer %r cannot be loaded (%s); counting with the estimate", name, exc)
            return ESTIMATE


def tokenizer(name: str | None = None) -> Tokenizer:
    return _load(name or os.environ.get("FLEETPLANE_TOKENIZER", "o200k_base"))


def count_text(text: str, *, encoding: str | None = None) -> int:
    return tokenizer(encoding).count(text)


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except Exception:  # e.g. an integer beyond 64 bits: still count something proportionate
        pass
    try:
        return str(value)
    except Exception:  # a structure too deep even for repr: count nothing rather than fail
        return ""


def _estimate_body(value: Any) -> int:
    """The last resort for a body of a shape the structured count did not expect."""
    return REPLY_PRIMING + ESTIMATE.count(_dumps(value))


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
    return tok.count(_dumps(content))


def _part_tokens(part: Mapping[str, Any], tok: Tokenizer) -> int:
    kind = part.get("type")
    if kind in ("text", "input_text", "output_text"):
        return tok.count(str(part.get("text", "")))
    if kind in ("image_url", "image", "input_image"):
        return TOKENS_PER_IMAGE
    if kind == "tool_use":
        return tok.count(str(part.get("name", ""))) + tok.count(_dumps(part.get("input", {})))
    if kind == "tool_result":
        return _content_tokens(part.get("content"), tok)
    if kind in ("thinking", "redacted_thinking"):
        return tok.count(str(part.get("thinking", part.get("data", ""))))
    return tok.count(_dumps(part))


def _tools_tokens(tools: Iterable[Any] | None, tok: Tokenizer) -> int:
    if not tools:
        return 0
    return sum(tok.count(_dumps(t)) for t in tools)


def count_openai_chat(body: Mapping[str, Any], *, encoding: str | None = None) -> int:
    """Input tokens of an OpenAI Chat Completions request body."""
    try:
        return _openai_chat(body, tokenizer(encoding))
    except Exception:  # a field of an unexpected type: nothing is validated before counting
        return _estimate_body(body)


def _openai_chat(body: Mapping[str, Any], tok: Tokenizer) -> int:
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
    try:
        return _anthropic_messages(body, tokenizer(encoding))
    except Exception:  # a field of an unexpected type: nothing is validated before counting
        return _estimate_body(body)


def _anthropic_messages(body: Mapping[str, Any], tok: Tokenizer) -> int:
    total = REPLY_PRIMING + _content_tokens(body.get("system"), tok)
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        total += TOKENS_PER_MESSAGE + _content_tokens(message.get("content"), tok)
    return total + _tools_tokens(body.get("tools"), tok)


def count_embedding_input(value: Any, *, encoding: str | None = None) -> int:
    """Tokens of an Embeddings `input`: a string, a list of strings, or pre-tokenized integer arrays."""
    try:
        return _embedding_input(value, tokenizer(encoding))
    except Exception:  # e.g. lists nested past the recursion limit
        return ESTIMATE.count(_dumps(value))


def _embedding_input(value: Any, tok: Tokenizer) -> int:
    if isinstance(value, str):
        return tok.count(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(_embedding_input(v, tok) for v in value)
    return 0
