"""Text overlap metrics, written out so nothing downloads and the numbers are the reference tools':

- `levenshtein` / `edit_similarity`: character edit distance and 1 - distance / longer length;
- `rouge_l`: ROUGE-L F1 on the LCS of tokens, tokenized like Google's `rouge-score` (lowercase, runs of
  [a-z0-9]; no stemming);
- `bleu`: sentence BLEU as `sacrebleu.sentence_bleu` computes it (13a tokenization, 4-grams, brevity
  penalty, 'exp' smoothing, effective order), on a 0-100 scale;
- `chrf`: chrF as `sacrebleu.sentence_chrf` (character 6-grams, beta 2, whitespace removed), 0-100.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_ROUGE_SPLIT = re.compile(r"[^a-z0-9]+")
_13A = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def levenshtein(a: str, b: str) -> int:
    """Insertions, deletions and substitutions turning `a` into `b` (two-row dynamic programming)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(a: str, b: str) -> float:
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - levenshtein(a, b) / longest


def rouge_tokens(text: str) -> list[str]:
    return [t for t in _ROUGE_SPLIT.split(text.lower()) if t]


def _lcs(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 of `candidate` against `reference`, in [0, 1]."""
    c, r = rouge_tokens(candidate), rouge_tokens(reference)
    if not c or not r:
        return 0.0
    lcs = _lcs(c, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(c), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def tokenize_13a(line: str) -> list[str]:
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, replacement in _13A:
        line = pattern.sub(replacement, line)
    return line.split()


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(candidate: str, reference: str, max_order: int = 4) -> float:
    """Sentence BLEU (0-100) with one reference, as sacrebleu's `sentence_bleu` defaults."""
    hyp, ref = tokenize_13a(candidate), tokenize_13a(reference)
    correct, total = [], []
    for n in range(1, max_order + 1):
        h, r = _ngrams(hyp, n), _ngrams(ref, n)
        correct.append(sum(min(count, r[g]) for g, count in h.items()))
        total.append(max(0, len(hyp) - n + 1))
    if not any(correct):
        return 0.0
    bp = 1.0 if len(hyp) >= len(ref) else math.exp(1 - len(ref) / len(hyp))
    logs, smooth = [], 1.0
    for n in range(max_order):
        if total[n] == 0:
            break  # effective order: only the n-gram orders the candidate has
        if correct[n] == 0:
            smooth *= 2
            logs.append(math.log(100.0 / (smooth * total[n])))
        else:
            logs.append(math.log(100.0 * correct[n] / total[n]))
    return bp * math.exp(sum(logs) / len(logs))


def _char_ngrams(text: str, n: int) -> Counter[str]:
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def chrf(candidate: str, reference: str, order: int = 6, beta: float = 2.0) -> float:
    """chrF (0-100): the F-beta of character n-gram precision and recall averaged over orders 1..6."""
    hyp, ref = "".join(candidate.split()), "".join(reference.split())
    factor = beta**2
    precision = recall = 0.0
    effective = 0
    for n in range(1, order + 1):
        h, r = _char_ngrams(hyp, n), _char_ngrams(ref, n)
        n_hyp, n_ref = sum(h.values()), sum(r.values())
        if n_hyp > 0 and n_ref > 0:
            match = sum(min(count, r[g]) for g, count in h.items())
            precision += match / n_hyp
            recall += match / n_ref
            effective += 1
    if effective == 0:
        return 0.0
    precision, recall = precision / effective, recall / effective
    if precision + recall == 0:
        return 0.0
    return 100.0 * (1 + factor) * precision * recall / (factor * precision + recall)
