"""Word splitting shared by the skill's modules."""


def split_words(text: str) -> list[str]:
    return text.split()
