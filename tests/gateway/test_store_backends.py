"""The same traffic gives the same ledger on SQLite and on Postgres."""

from __future__ import annotations

from typing import Any

import anthropic
import openai


def test_usage_ledger_on_each_store(make_gateway: Any, database_url: str) -> None:
    gateway = make_gateway(database_url)
    oai = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["full"], max_retries=0)
    oai.chat.completions.create(
        model="chain", messages=[{"role": "user", "content": "a [[sim output_tokens=3]]"}]
    )
    list(
        oai.chat.completions.create(
            model="solo", messages=[{"role": "user", "content": "b [[sim output_tokens=4]]"}], stream=True
        )
    )
    oai.embeddings.create(model="embed", input="c")
    anthropic.Anthropic(base_url=gateway.url, api_key=gateway.keys["full"], max_retries=0).messages.create(
        model="claude", max_tokens=20, messages=[{"role": "user", "content": "d [[sim output_tokens=5]]"}]
    )
    records = gateway.usage(at_least=4)
    assert [(r.api, r.model, r.stream, r.output_tokens) for r in records] == [
        ("chat", "chain", False, 3),
        ("chat", "solo", True, 4),
        ("embeddings", "embed", False, 0),
        ("messages", "claude", False, 5),
    ]
    assert all(r.team == "support" and r.agent == "bot" and r.organization == "acme" for r in records)
    assert all(r.cost_usd > 0 for r in records)
