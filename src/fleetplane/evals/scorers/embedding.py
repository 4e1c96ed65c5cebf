"""`embedding-similarity`: the cosine similarity of the answer and the reference, embedded by a model
group through the gateway's embeddings API (`POST /v1/embeddings`), so the call is governed and charged
like any other. A cheap semantic scorer: one small embeddings call per item, its dollars reported.

Where the gateway is: `configure_embeddings(EmbeddingClient(...))` (the CLI points it at the server it
runs against, with the Model manifests' input prices), else `$FLEETPLANE_URL` and `$FLEETPLANE_API_KEY`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from fleetplane.evals.scorers.params import Params, reference_text
from fleetplane.evals.scoring import Sample, Score, Tier, register_scorer


class EmbeddingError(RuntimeError):
    pass


@dataclass
class EmbeddingClient:
    base_url: str  # the server, without /v1
    api_key: str
    prices: Mapping[str, float] = field(
        default_factory=dict
    )  # model group -> dollars per million input tokens
    transport: httpx.AsyncBaseTransport | None = None

    async def embed(self, model: str, texts: Sequence[str]) -> tuple[list[list[float]], int]:
        """Vectors in input order and the input tokens charged."""
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with httpx.AsyncClient(
            base_url=self.base_url.rstrip("/"), transport=self.transport, timeout=60
        ) as c:
            response = await c.post(
                "/v1/embeddings", json={"model": model, "input": list(texts)}, headers=headers
            )
        if response.status_code != 200:
            raise EmbeddingError(
                f"embeddings from {model!r}: HTTP {response.status_code}: {response.text[:200]}"
            )
        body = response.json()
        rows = sorted(body.get("data") or [], key=lambda d: d.get("index", 0))
        if len(rows) != len(texts):
            raise EmbeddingError(f"embeddings from {model!r}: {len(rows)} vectors for {len(texts)} texts")
        tokens = int((body.get("usage") or {}).get("prompt_tokens", 0))
        return [list(map(float, r["embedding"])) for r in rows], tokens


_configured: EmbeddingClient | None = None


def configure_embeddings(client: EmbeddingClient | None) -> None:
    global _configured
    _configured = client


def _client() -> EmbeddingClient:
    if _configured is not None:
        return _configured
    return EmbeddingClient(
        os.environ.get("FLEETPLANE_URL", "http://127.0.0.1:8700"), os.environ.get("FLEETPLANE_API_KEY", "")
    )


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 0.0 if norm == 0 else dot / norm


@dataclass(frozen=True)
class EmbeddingSimilarity:
    model: str
    reference: str | None
    threshold: float | None
    type: str = "embedding-similarity"
    tier: Tier = "embedding"

    async def score(self, sample: Sample) -> Score:
        reference = reference_text(sample, self.type, self.reference)
        if not reference:
            return Score(0.0, passed=False, explanation="the case has no reference text")
        client = _client()
        (answer, ref), tokens = await client.embed(self.model, [sample.output, reference])
        value = min(1.0, max(0.0, cosine(answer, ref)))  # opposite directions count as unrelated
        cost = tokens * client.prices.get(self.model, 0.0) / 1e6
        passed = None if self.threshold is None else value >= self.threshold
        return Score(value, passed=passed, cost_usd=cost, details={"model": self.model, "tokens": tokens})


@register_scorer("embedding-similarity", "embedding", "cosine similarity to the reference, via the gateway")
def _embedding(params: Mapping[str, Any]) -> EmbeddingSimilarity:
    p = Params("embedding-similarity", params)
    model = p.take("model", str)
    threshold = p.take("threshold", (int, float), None)
    scorer = EmbeddingSimilarity(
        model, p.take("value", str, None), None if threshold is None else float(threshold)
    )
    p.done()
    return scorer
