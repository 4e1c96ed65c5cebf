"""`fleetplane usage`: requests, tokens and dollars — from the usage ledger (every request, exact), or
over time and by prompt version from the traces — and the drift signal per agent or prompt version."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from fleetplane.cli.common import DatabaseURL, console, fail, now, with_store
from fleetplane.manifests.fields import parse_duration
from fleetplane.store.db import Store
from fleetplane.store.usage import UsageRepository
from fleetplane.telemetry.drift import By, as_dict, drift
from fleetplane.telemetry.spanstore import SpanStore
from fleetplane.telemetry.usagequery import BUCKETS

LEDGER = ("organization", "team", "user", "customer", "agent", "model", "provider", "deployment_model", "api")
# Traces know these too (a prompt version is only on spans: clients send it in a header).
TRACES = ("team", "agent", "model", "prompt_version")


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return now() - float(parse_duration(text))
    except ValueError as exc:
        fail(f"--since {text!r}: {exc}")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=lambda v: str(v) if isinstance(v, Decimal) else v)


def register(app: typer.Typer) -> None:
    @app.command()
    def usage(
        by: Annotated[
            str,
            typer.Option(
                help=f"Columns to group by: {', '.join(LEDGER)}; with --bucket: {', '.join(TRACES)}."
            ),
        ] = "team,agent,model",
        since: Annotated[str | None, typer.Option(help="Only the last DURATION, e.g. 15m, 24h, 7d.")] = None,
        bucket: Annotated[
            str | None,
            typer.Option(help=f"Over time, per bucket ({', '.join(BUCKETS)}), from the traces."),
        ] = None,
        show_drift: Annotated[
            bool,
            typer.Option(
                "--drift", help="Drift of each agent (or prompt version): this hour vs the day before."
            ),
        ] = False,
        output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
        database_url: DatabaseURL = None,
    ) -> None:
        """Requests, tokens and cost by team, agent, model, prompt version ... and drift."""
        columns = [c.strip() for c in by.split(",") if c.strip()]
        if output not in ("table", "json"):
            fail(f"unknown output {output!r}; expected table or json")
        start = _since(since)
        if show_drift:
            _drift(columns, output, database_url)
        elif bucket is not None or "prompt_version" in columns:
            _over_time(columns, start, bucket or "1h", output, database_url)
        else:
            _ledger(columns, start, output, database_url)


def _ledger(columns: list[str], start: float | None, output: str, database_url: str | None) -> None:
    unknown = [c for c in columns if c not in LEDGER]
    if unknown or not columns:
        fail(f"cannot group by {', '.join(unknown) or 'nothing'}; choose from: {', '.join(LEDGER)}")

    async def read(store: Store) -> list[dict[str, Any]]:
        return await UsageRepository(store).totals(columns, since=start)

    rows = with_store(database_url, read)
    if output == "json":
        typer.echo(_json(rows))
        return
    if not rows:
        console.print("no usage recorded yet")
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
    console.print(table)


def _over_time(
    columns: list[str], start: float | None, bucket: str, output: str, database_url: str | None
) -> None:
    unknown = [c for c in columns if c not in TRACES]
    if unknown or not columns:
        fail(f"over time (from traces) groups by {', '.join(TRACES)}, not {', '.join(unknown) or 'nothing'}")
    if bucket not in BUCKETS:
        fail(f"--bucket {bucket!r}: expected one of {', '.join(BUCKETS)}")

    async def read(store: Store) -> list[Any]:
        return await SpanStore(store).usage(group_by=columns, since=start, bucket=bucket)

    rows = with_store(database_url, read)
    if output == "json":
        payload = [
            {"bucket": r.bucket, **r.group, "calls": r.spans, "input_tokens": r.input_tokens,
             "output_tokens": r.output_tokens, "cost_usd": r.cost_usd}
            for r in rows
        ]  # fmt: skip
        typer.echo(_json(payload))
        return
    if not rows:
        console.print("no traced model calls in that window")
        return
    headers = [c.replace("_", " ") for c in columns]
    table = Table("from (UTC)", *headers, "calls", "input tokens", "output tokens", "cost (USD)",
                  title=f"per {bucket}, from traces")  # fmt: skip
    for row in rows:
        when = datetime.fromtimestamp(row.bucket, UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(when, *[str(row.group.get(c) or "-") for c in columns], f"{row.spans:,}",
                      f"{row.input_tokens:,}", f"{row.output_tokens:,}", f"{row.cost_usd:.6f}")  # fmt: skip
    console.print(table)


def _drift(columns: list[str], output: str, database_url: str | None) -> None:
    by: By = "prompt_version" if "prompt_version" in columns else "agent"
    end = now()

    async def read(store: Store) -> list[Any]:
        return await drift(store, by=by, reference=(end - 90000, end - 3600), current=(end - 3600, end))

    signals = with_store(database_url, read)
    if output == "json":
        typer.echo(_json([as_dict(s) for s in signals]))
        return
    if not signals:
        console.print("no traced chat calls in the last day")
        return

    def number(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    table = Table(by.replace("_", " "), "samples (day / hour)", "length PSI", "finish TVD", "refusals Δ",
                  "drifted", title="drift: the last hour against the day before")  # fmt: skip
    for s in signals:
        table.add_row(s.subject, f"{s.reference_n} / {s.current_n}", number(s.length_psi, ".2f"),
                      number(s.finish_tvd, ".2f"), number(s.refusal_delta, "+.1%"),
                      "; ".join(s.reasons) if s.drifted else "no")  # fmt: skip
    console.print(table)
