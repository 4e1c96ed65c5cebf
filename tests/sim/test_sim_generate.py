"""Seeded reply text: every piece is one o200k_base token, so a reply's length in pieces is its usage."""

from __future__ import annotations

import random

from fleetplane.sim.config import OutputTokens
from fleetplane.sim.embeddings import embed, to_base64, truncate
from fleetplane.sim.generate import (
    PUNCTUATION,
    SENTENCE_STARTS,
    WORDS,
    cut_at_stop,
    output_length,
    request_seed,
    text_pieces,
)
from fleetplane.telemetry.tokens import count_text


def test_every_vocabulary_entry_is_one_token() -> None:
    for word in WORDS:
        assert word.startswith(" ")
        assert count_text(word, encoding="o200k_base") == 1, word
    for start in SENTENCE_STARTS:
        assert count_text(start, encoding="o200k_base") == 1, start
        assert count_text(" " + start, encoding="o200k_base") == 1, start
    for mark in PUNCTUATION:
        assert count_text(mark, encoding="o200k_base") == 1


def test_text_of_n_pieces_is_n_tokens() -> None:
    for seed in range(300):
        rng = random.Random(seed)
        n = rng.randint(0, 600)
        pieces = text_pieces(random.Random(seed * 7 + 1), n)
        assert len(pieces) == n
        assert count_text("".join(pieces), encoding="o200k_base") == n


def test_text_reads_as_sentences() -> None:
    text = "".join(text_pieces(random.Random(3), 200))
    assert text[0].isupper()
    assert ". " in text
    assert "  " not in text


def test_a_shorter_reply_is_a_prefix_of_a_longer_one() -> None:
    long = text_pieces(random.Random(11), 300)
    for n in (0, 1, 17, 120):
        assert text_pieces(random.Random(11), n) == long[:n]


def test_request_seed_ignores_delivery_fields_only() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    base = request_seed(1, "m", body)
    assert request_seed(1, "m", dict(reversed(list(body.items())))) == base
    assert request_seed(1, "m", {**body, "stream": True, "stream_options": {"include_usage": True}}) == base
    assert request_seed(1, "m", {**body, "max_tokens": 5, "max_completion_tokens": 9}) == base
    assert request_seed(1, "m", {**body, "stop": ["x"], "stop_sequences": ["y"], "n": 3}) == base
    assert request_seed(2, "m", body) != base
    assert request_seed(1, "other", body) != base
    assert request_seed(1, "m", {**body, "temperature": 0.2}) != base


def test_output_length_respects_bounds() -> None:
    spec = OutputTokens(mean=50, stddev=200, min=10, max=60)
    lengths = {output_length(random.Random(i), spec) for i in range(300)}
    assert min(lengths) == 10
    assert max(lengths) == 60
    assert output_length(random.Random(1), OutputTokens(mean=33, stddev=0, min=0, max=100)) == 33


def test_cut_at_stop_takes_the_earliest_match() -> None:
    assert cut_at_stop("one two three two", ["three", " two"]) == ("one", " two")
    assert cut_at_stop("one two", ["zzz"]) == ("one two", None)
    assert cut_at_stop("one two", [""]) == ("one two", None)


def test_embeddings_are_deterministic_unit_vectors() -> None:
    a = embed(1, "e", "hello", 256)
    assert a == embed(1, "e", "hello", 256)
    assert a != embed(2, "e", "hello", 256)
    assert abs(sum(v * v for v in a) - 1.0) < 1e-9
    short = truncate(a, 32)
    assert len(short) == 32
    assert abs(sum(v * v for v in short) - 1.0) < 1e-9
    # A truncated vector points the same way as the head of the full one.
    norm = sum(v * v for v in a[:32]) ** 0.5
    assert all(abs(s - v / norm) < 1e-12 for s, v in zip(short, a[:32], strict=True))
    other = embed(1, "e", "goodbye", 256)
    assert abs(sum(x * y for x, y in zip(a, other, strict=True))) < 0.3


def test_base64_embeddings_are_little_endian_float32() -> None:
    import base64
    import struct

    vector = [0.5, -0.25, 1.0]
    raw = base64.b64decode(to_base64(vector))
    assert struct.unpack("<3f", raw) == (0.5, -0.25, 1.0)
