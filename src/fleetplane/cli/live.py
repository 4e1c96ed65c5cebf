"""Live gateway state from a running server: `fleetplane get quotas` (through `get`) and
`fleetplane breakers list|reset`."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer
from rich.table import Table

from fleetplane.cli.admin_client import DEFAULT_SERVER, ServerUnreachable, ServerURL, admin
from fleetplane.cli.common import FAILED, console, fail


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.6g}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{math.ceil(value)}s"


def quota_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("QUOTA", "SUBJECT", "LIMIT", "VALUE", "USED", "RESERVED", "RESETS IN", "IN FORCE")
    for column in table.columns:
        column.overflow = "fold"  # names matter more than a tidy width
    for row in rows:
        for i, limit in enumerate(row["limits"]):
            table.add_row(
                row["rule"] if i == 0 else "",
                row["subject"] if i == 0 else "",
                limit["name"],
                _number(limit["limit"]),
                _number(limit["used"]),
                _number(limit["reserved"]),
                _seconds(limit["resetAfter"]),
                row["schedule"] if i == 0 else "",
            )
    return table


def show_quotas(server: str, output: str) -> bool:
    """Print the live quota table; False when no server answers (the caller falls back)."""
    try:
        rows = admin(server, "GET", "/admin/quotas")["quotas"]
    except ServerUnreachable:
        return False
    if output == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif not rows:
        console.print("no quota applies to anything yet")
    else:
        console.print(quota_table(rows))
    return True


def register(app: typer.Typer) -> None:
    breakers = typer.Typer(help="Circuit breakers of a running server: list them, or close one by hand.")
    app.add_typer(breakers, name="breakers")

    @breakers.command("list")
    def list_breakers(
        server: ServerURL = DEFAULT_SERVER,
        output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
    ) -> None:
        """Every breaker the server knows: state, why it tripped, when it half-opens."""
        try:
            rows = admin(server, "GET", "/admin/breakers")["breakers"]
        except ServerUnreachable as exc:
            fail(str(exc), code=FAILED)
        if output == "json":
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            console.print("no breaker has seen traffic yet")
            return
        table = Table("BREAKER", "STATE", "TRIPS", "REASON", "HALF-OPENS IN")
        for row in rows:
            table.add_row(
                row["key"],
                row["status"],
                str(row["trips"]),
                row["reason"] or "-",
                _seconds(row["retry_after"]),
            )
        console.print(table)

    @breakers.command("reset")
    def reset_breaker(
        key: Annotated[str, typer.Argument(help="The breaker's key, as `breakers list` shows it.")],
        server: ServerURL = DEFAULT_SERVER,
    ) -> None:
        """Close a breaker now and clear its windows."""
        try:
            admin(server, "POST", f"/admin/breakers/{key}/reset")
        except ServerUnreachable as exc:
            fail(str(exc), code=FAILED)
        console.print(f"reset {key}", markup=False)
