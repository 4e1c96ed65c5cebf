"""`fleetplane usage`: totals from the ledger, usage over time and by prompt version from traces, drift."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from decimal import Decimal

import typer
from typer.testing import CliRunner

from fleetplane.cli import usage
from fleetplane.store.db import Store
from fleetplane.store.usage import UsageRecord, UsageRepository
from fleetplane.telemetry.records import SpanRecord
from fleetplane.telemetry.spanstore import SpanStore


def app() -> typer.Typer:
    cli = typer.Typer()
    usage.register(cli)
    cli.command("noop")(lambda: None)  # a second command keeps `usage` a named subcommand
    return cli


def seed(url: str) -> None:
    now = time.time()

    async def write() -> None:
        store = await Store.open(url)
        try:
            await UsageRepository(store).insert_many(
                [
                    UsageRecord(request_id=f"r{i}", created_at=now - 60, api="chat", status=200, stream=False,
                                usage_source="reported", team="support", agent="bot", model="chat-large",
                                input_tokens=10, output_tokens=5, cost_usd=Decimal("0.001"))
                    for i in range(3)
                ]
            )  # fmt: skip
            spans = [
                SpanRecord(
                    trace_id=secrets.token_hex(16), span_id=secrets.token_hex(8), parent_span_id=None,
                    name="chat chat-large", kind="client", start_ns=int((now - 120 - i) * 1e9),
                    end_ns=int((now - 119 - i) * 1e9), status_code="unset", operation="chat", agent="bot",
                    team="support", request_model="chat-large", prompt_version=f"v{1 + i % 2}",
                    input_tokens=10, output_tokens=5, cost_usd=Decimal("0.001"), finish_reasons=["stop"],
                )
                for i in range(4)
            ]  # fmt: skip
            await SpanStore(store).write(spans, [])
        finally:
            await store.close()

    asyncio.run(write())


def test_usage_views(database_url: str) -> None:
    seed(database_url)
    runner = CliRunner()
    env = {"FLEETPLANE_DATABASE_URL": database_url}
    totals = runner.invoke(app(), ["usage", "-o", "json"], env=env)
    assert totals.exit_code == 0, totals.output
    [row] = json.loads(totals.output)
    assert (row["team"], row["agent"], row["model"], row["requests"], row["input_tokens"]) == (
        "support", "bot", "chat-large", 3, 30,
    )  # fmt: skip
    by_version = runner.invoke(
        app(), ["usage", "--by", "prompt_version", "--bucket", "1d", "-o", "json"], env=env
    )
    assert by_version.exit_code == 0, by_version.output
    versions = {r["prompt_version"]: r["calls"] for r in json.loads(by_version.output)}
    assert versions == {"v1": 2, "v2": 2}
    drift = runner.invoke(app(), ["usage", "--drift", "-o", "json"], env=env)
    assert drift.exit_code == 0, drift.output
    [signal] = json.loads(drift.output)
    assert signal["subject"] == "bot" and signal["currentSamples"] == 4 and signal["drifted"] is False
    table = runner.invoke(app(), ["usage", "--by", "agent,prompt_version"], env=env)
    assert "from traces" in table.output


def test_bad_usage_options(sqlite_url: str) -> None:
    runner = CliRunner()
    env = {"FLEETPLANE_DATABASE_URL": sqlite_url}
    cases = {
        ("--by", "nope"): "cannot group by nope",
        ("--bucket", "2h"): "--bucket '2h': expected one of 1m, 5m, 15m, 1h, 6h, 1d",
        ("--since", "soon"): "--since 'soon'",
        (
            "--by",
            "provider",
            "--bucket",
            "1h",
        ): "over time (from traces) groups by team, agent, model, prompt_version",
        ("-o", "xml"): "unknown output 'xml'",
    }
    for args, message in cases.items():
        result = runner.invoke(app(), ["usage", *args], env=env)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
