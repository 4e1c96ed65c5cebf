import asyncio
from types import SimpleNamespace

import pytest
from scripts import refunds


@pytest.fixture(autouse=True)
def _ledger(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REFUNDS_LEDGER", str(tmp_path / "refunds.jsonl"))


def test_a_refund_is_found_under_its_idempotency_key() -> None:
    ctx = SimpleNamespace(idempotency_key="run-1:refund", call_tool=None)
    assert asyncio.run(refunds.find({"order": "ord-7", "amount": 5}, ctx)) is None
    out = asyncio.run(refunds.send({"order": "ord-7", "amount": 5}, ctx))
    assert asyncio.run(refunds.find({"order": "ord-7", "amount": 5}, ctx)) == out


def test_the_tool_call_carries_the_amount() -> None:
    calls = []

    async def call_tool(name, args):
        calls.append((name, args))
        return {}

    ctx = SimpleNamespace(idempotency_key="run-2:refund", call_tool=call_tool)
    asyncio.run(refunds.send({"order": "ord-8", "amount": 150}, ctx))
    assert calls == [("payments.refund", {"order": "ord-8", "amount": 150})]
