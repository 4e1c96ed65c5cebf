"""Deterministic unit vectors for the embeddings endpoint.

The same (seed, model, text) always gives the same vector; different texts give nearly orthogonal ones.
A shorter `dimensions` truncates the full vector and renormalises it, as OpenAI's text-embedding-3 models
do, so a 256-dimension vector is the prefix direction of the 1536-dimension one.
"""

from __future__ import annotations

import base64
import hashlib
import math
import sys
from array import array


def embed(seed: int, model: str, text: str, dimensions: int) -> list[float]:
    digest = hashlib.shake_256(f"{seed}\x00{model}\x00{text}".encode()).digest(dimensions * 2)
    raw = array("h")
    raw.frombytes(digest)
    if sys.byteorder == "big":
        raw.byteswap()
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


def truncate(vector: list[float], dimensions: int) -> list[float]:
    if dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(v * v for v in head)) or 1.0
    return [v / norm for v in head]


def to_base64(vector: list[float]) -> str:
    """Little-endian float32, the layout the openai SDK decodes with numpy or `array`."""
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")
