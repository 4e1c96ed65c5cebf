"""BM25 ranking of the handbook's passages (Robertson/Sparck Jones; k1 = 1.5, b = 0.75)."""

import math
import re

from .corpus import DOCUMENTS

K1 = 1.5
B = 0.75
_WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def rank(query: str, documents: list[dict], top_k: int = 3) -> list[dict]:
    bodies = [tokens(d["title"] + " " + d["text"]) for d in documents]
    average = sum(len(b) for b in bodies) / len(bodies)
    frequency: dict[str, int] = {}
    for body in bodies:
        for word in set(body):
            frequency[word] = frequency.get(word, 0) + 1
    terms = tokens(query)
    scored = []
    for document, body in zip(documents, bodies, strict=True):
        score = 0.0
        for term in terms:
            count = body.count(term)
            if not count:
                continue
            idf = math.log((len(bodies) - frequency[term] + 0.5) / (frequency[term] + 0.5) + 1)
            score += idf * count * (K1 + 1) / (count + K1 * (1 - B + B * len(body) / average))
        if score > 0:
            scored.append({**document, "score": round(score, 4)})
    scored.sort(key=lambda d: (-d["score"], d["id"]))
    return scored[:top_k]


def run(input: dict, ctx) -> dict:
    return {"passages": rank(input["query"], DOCUMENTS, int(input.get("top_k", 3)))}
