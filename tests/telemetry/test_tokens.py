"""Token counting is total: a text of any length is counted (in pieces the tokenizer accepts), and a
tokenizer that fails, or a body of an unexpected shape, falls back to the estimate instead of raising."""

from __future__ import annotations

import random

import pytest

from fleetplane.telemetry import tokens
from fleetplane.telemetry.tokens import (
    ESTIMATE,
    PIECE_CHARS,
    BpeTokenizer,
    count_anthropic_messages,
    count_embedding_input,
    count_openai_chat,
    count_text,
    pieces,
)

WORDS = ["alpha", "beta", "gamma", "the", "of", "internationalization", "x1", "42,", "yz.\n", "naïve", "東京"]


def prose(chars: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)


def test_a_megabyte_prompt_is_counted_close_to_the_sum_of_its_parts() -> None:
    block = prose(10_000)
    text = " ".join([block] * 100)  # ~1 MB, far past the tokenizer's 200,000-token limit per call
    assert len(text) > 1_000_000
    whole = count_text(text)
    by_blocks = 100 * count_text(block)
    assert abs(whole - by_blocks) <= by_blocks * 0.001
    assert whole != ESTIMATE.count(text)  # counted by the vocabulary, not estimated


def test_text_past_the_limit_in_one_run_without_whitespace_is_counted() -> None:
    text = "x" * 1_700_000  # 212,500 tokens in one call would be refused
    assert count_text(text) == pytest.approx(1_700_000 / 8, rel=0.01)


def test_pieces_cut_before_whitespace_and_lose_nothing() -> None:
    text = prose(450_000)
    parts = list(pieces(text))
    assert "".join(parts) == text
    assert all(len(p) <= PIECE_CHARS for p in parts)
    assert all(p[0].isspace() for p in parts[1:])  # the space travels with the word after it
    assert all(not p[-1].isspace() for p in parts[:-1])


def test_pieces_of_text_without_whitespace_are_hard_cut() -> None:
    text = "y" * (2 * PIECE_CHARS + 5)
    assert [len(p) for p in pieces(text)] == [PIECE_CHARS, PIECE_CHARS, 5]


def test_short_text_is_one_piece() -> None:
    assert list(pieces("hello world")) == ["hello world"]


class _Broken:
    def encode_ordinary(self, text: str) -> list[int]:
        raise RuntimeError("tokenizer backend exploded")


def test_a_failing_tokenizer_falls_back_to_the_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    tok = tokens.tokenizer("o200k_base")
    assert isinstance(tok, BpeTokenizer)
    monkeypatch.setattr(tok, "_encoding", _Broken())
    text = "Hello there, how are you today?"
    assert count_text(text, encoding="o200k_base") == ESTIMATE.count(text)
    body = {"messages": [{"role": "user", "content": text}]}
    assert count_openai_chat(body, encoding="o200k_base") > 0
    assert count_anthropic_messages(body, encoding="o200k_base") > 0


def test_an_encoding_that_cannot_load_counts_with_the_estimate() -> None:
    assert tokens.tokenizer("no-such-encoding") is ESTIMATE
    assert count_text("four words right here", encoding="no-such-encoding") == ESTIMATE.count(
        "four words right here"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "assistant", "tool_calls": [{"function": "not a mapping"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "tool_use", "input": 2**70}]}]},
        {"messages": "not a list"},
        {"messages": [{"role": "user", "content": 12}], "tools": 5},
    ],
)
def test_bodies_of_unexpected_shape_are_estimated_not_raised(body: dict[str, object]) -> None:
    assert count_openai_chat(body) > 0
    assert count_anthropic_messages(body) > 0


def test_estimate_survives_a_lone_surrogate() -> None:
    assert ESTIMATE.count("a\ud800b") >= 1
    assert count_text("a\ud800b") >= 1


def test_embedding_inputs() -> None:
    assert count_embedding_input([1, 2, 3]) == 3
    assert count_embedding_input(["hello", "world"]) == count_text("hello") + count_text("world")
    assert count_embedding_input(None) == 0
