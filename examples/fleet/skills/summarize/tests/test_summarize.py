from scripts.summarize import run


def test_keeps_the_first_words() -> None:
    assert run({"text": "a b c", "maxWords": 2}, None) == {"summary": "a b", "words": 2}


def test_collapses_whitespace() -> None:
    assert run({"text": "  where   is\nmy parcel "}, None) == {"summary": "where is my parcel", "words": 4}
