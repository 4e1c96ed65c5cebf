"""`fleetplane usage`: requests, tokens and dollars from the usage ledger, grouped as asked."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from fleetplane.cli.common import DatabaseURL, console, fail, now, with_store
from fleetplane.manifests.fields import parse_duration
from fleetplane.store.db import Store
from fleetplane.store.usage import UsageRepository

GROUPABLE = (
    "organization",
    "team",
    "user",
    "customer",
    "agent",
    "model",
    "provider",
    "deployment_model",
    "api",
)


def register(app: typer.Typer) -> None:
    @app.command()
    def usage(
        by: Annotated[
            str, typer.Option(help=f"Comma-separated columns to group by, from: {', '.join(GROUPABLE)}.")
        ] = "team,agent,model",
        since: Annotated[str | None, typer.Option(help="Only the last DURATION, e.g. 15m, 24h, 7d.")] = None,
        output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
        database_url: DatabaseURL = None,
    ) -> None:
        """Requests, tokens and cost from the usage ledger, grouped by team, agent, model, ..."""
        columns = [c.strip() for c in by.split(",") if c.strip()]
        unknown = [c for c in columns if c not in GROUPABLE]
        if unknown or not columns:
            fail(f"cannot group by {', '.join(unknown) or 'nothing'}; choose from: {', '.join(GROUPABLE)}")
        if output not in ("table", "json"):
            fail(f"unknown output {output!r}; expected table or json")
        start: float | None = None
        if since is not None:
            try:
                start = now() - float(parse_duration(since))
            except ValueError as exc:
                fail(f"--since {since!r}: {exc}")

        async def read(store: Store) -> list[dict[str, Any]]:
            return await UsageRepository(store).totals(columns, since=start)

        rows = with_store(database_url, read)
        if output == "json":
            console.print_json(json.dumps(rows, default=lambda v: str(v) if isinstance(v, Decimal) else v))
            return
        table = Table(
            *[c.replace("_", " ") for c in columns], "requests", "input tokens", "output tokens", "cost (USD)"
        )
        for row in rows:
            table.add_row(
                *[str(row[c] or "-") for c in columns],
                f"{row['requests']:,}",
                f"{row['input_tokens']:,}",
                f"{row['output_tokens']:,}",
                f"{Decimal(row['cost_usd']):.6f}",
            )
        if not rows:
            console.print("no usage recorded yet")
            return
        console.print(table)
