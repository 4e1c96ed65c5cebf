from scripts import search


def test_the_best_passage_comes_first() -> None:
    found = search.rank("refund above 100 euros approval", search.DOCUMENTS, 2)
    assert [p["id"] for p in found] == ["refunds-large", "refunds-window"]


def test_a_query_with_no_known_word_finds_nothing() -> None:
    assert search.rank("zebra", search.DOCUMENTS) == []
