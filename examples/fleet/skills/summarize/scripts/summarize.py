"""Keep the first words of a message."""

from .words import split_words

DEFAULT_WORDS = 8


def run(input: dict, ctx: object) -> dict:
    words = split_words(input["text"])[: input.get("maxWords", DEFAULT_WORDS)]
    return {"summary": " ".join(words), "words": len(words)}
