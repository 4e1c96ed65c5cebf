"""Seeded reply text whose token count is known without a tokenizer.

Every piece of text the simulator emits is one token under `o200k_base`: words carry their leading space
(" river"), sentence starts are capitalised words that are single tokens with or without the space, and
"." and "," are single tokens too. The tokenizer's pre-split puts a boundary before each of these pieces,
so a reply of N pieces is exactly N tokens and `completion_tokens` is honest. tests/sim checks both facts.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from typing import Any

import orjson

from fleetplane.sim.config import OutputTokens

_BODY_WORDS = """
    the of and to in is for on that with as by at from this be are it an or was which can has have
    not but all they more one will their also new other when there been its were about what into
    only some than time would these after first two most may use used such many any system data
    model agent agents request response service fleet gateway token tokens budget quota limit team
    user value result results process control state level number part each work based between
    through over under while where those both same well should could make made last high low large
    small long short simple clear common general public local global early late full open close
    strong light fast slow ready stable steady careful useful proper direct final basic main key
    major minor single double total real true plan plans step steps task tasks tool tools test tests
    check checks run runs build builds route routes call calls note notes point points case cases
    rule rules view views line lines file files page pages list lists set sets group groups order
    orders change changes update updates report reports error errors signal signals trace traces
    record records event events message messages answer answers question questions idea ideas reason
    reasons method methods approach design pattern patterns example examples option options choice
    choices feature features version policy review reviews support memory context window network
    server client cache latency capacity demand load traffic cost costs price prices score scores
    quality safety trust access then next now here today always often usually sometimes never again
    still already soon later perhaps very quite rather almost nearly just even instead however
    therefore thus because since although unless until before during within without across along
    around behind beyond near above below inside outside toward we you our your them us who how why
    keep keeps take takes give gives find finds show shows help helps move moves start starts stop
    stops hold holds bring brings turn turns follow follows allow allows provide provides include
    includes consider expect expects require requires reduce reduces increase increases measure
    measures compare return returns handle handles manage improve explain describe remain remains
    become becomes seem seems appear appears create creates remove add adds read reads write writes
    send sends receive learn know knows think want wants need needs try tries look looks ask asks
    tell tells water river mountain forest city road house garden door table morning evening night
    day week year people person world country history family friend story music art science nature
    energy power market company school student teacher book language word words voice sound color
    shape space place area region
"""

WORDS: tuple[str, ...] = tuple(" " + word for word in _BODY_WORDS.split())
SENTENCE_STARTS: tuple[str, ...] = (
    "The",
    "In",
    "This",
    "It",
    "One",
    "When",
    "Some",
    "These",
    "Most",
    "Many",
    "Each",
    "Then",
    "We",
    "Our",
)
PUNCTUATION: tuple[str, ...] = (".", ",")

# Fields that change how a reply is delivered or where it is cut, not what it says: a streamed and a plain
# request get the same text, a capped or stopped one a prefix of it, and choice 0 is the same for any `n`.
_DELIVERY_FIELDS = frozenset(
    {"stream", "stream_options", "max_tokens", "max_completion_tokens", "stop", "stop_sequences", "n"}
)


def request_seed(sim_seed: int, model: str, body: Mapping[str, Any]) -> int:
    content = {k: v for k, v in body.items() if k not in _DELIVERY_FIELDS}
    digest = hashlib.blake2b(digest_size=8, key=str(sim_seed).encode()[:64])
    digest.update(model.encode())
    digest.update(b"\x00")
    digest.update(orjson.dumps(content, option=orjson.OPT_SORT_KEYS))
    return int.from_bytes(digest.digest(), "big")


def choice_rng(seed: int, index: int) -> random.Random:
    return random.Random(seed * 131 + index)


def output_length(rng: random.Random, spec: OutputTokens) -> int:
    drawn = round(rng.gauss(spec.mean, spec.stddev)) if spec.stddev > 0 else round(spec.mean)
    return max(spec.min, min(spec.max, drawn))


def text_pieces(rng: random.Random, tokens: int) -> list[str]:
    """`tokens` one-token pieces forming sentences; a reply cut short simply ends mid-sentence."""
    pieces: list[str] = []
    while len(pieces) < tokens:
        start = rng.choice(SENTENCE_STARTS)
        pieces.append(start if not pieces else " " + start)
        words = rng.randint(5, 16)
        for position in range(words):
            if len(pieces) >= tokens:
                return pieces
            pieces.append(rng.choice(WORDS))
            # Commas only between words: ",." would merge into one token.
            if 2 < position < words - 1 and rng.random() < 0.08 and len(pieces) < tokens:
                pieces.append(",")
        if len(pieces) < tokens:
            pieces.append(".")
    return pieces[:tokens]


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """The text up to the earliest stop sequence, and which sequence matched (None when none did)."""
    best: int | None = None
    matched: str | None = None
    for stop in stops:
        if not stop:
            continue
        at = text.find(stop)
        if at >= 0 and (best is None or at < best):
            best, matched = at, stop
    if best is None:
        return text, None
    return text[:best], matched


def random_id(rng: random.Random, length: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(length))
