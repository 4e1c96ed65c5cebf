"""Refunds against a ledger file standing in for a payments provider: one JSON line per refund, keyed by
the step's idempotency key, so `find` can tell after a crash whether a refund went out."""

import json
import os
from pathlib import Path

from fleetplane.skills import TransientError


def ledger() -> Path:
    return Path(os.environ.get("REFUNDS_LEDGER", ".fleetplane/refunds.jsonl"))


def _recorded(key: str) -> dict | None:
    path = ledger()
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["key"] == key:
            return entry["refund"]
    return None


async def send(input: dict, ctx) -> dict:
    if os.environ.get("REFUNDS_UNAVAILABLE"):
        raise TransientError("the payments provider is unavailable (REFUNDS_UNAVAILABLE is set)")
    if ctx.call_tool is not None:
        await ctx.call_tool("payments.refund", {"order": input["order"], "amount": input["amount"]})
    refund = {
        "refundId": f"rf-{input['order']}",
        "order": input["order"],
        "amount": input["amount"],
        "status": "sent",
    }
    path = ledger()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps({"key": ctx.idempotency_key, "refund": refund}) + "\n")
    return refund


async def find(input: dict, ctx) -> dict | None:
    """The refund made under this step's idempotency key, or None if it never went out."""
    return _recorded(ctx.idempotency_key)
