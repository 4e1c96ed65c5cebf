"""`fleetplane doctor`: which isolation tiers work on this host and why not (see `runtime.doctor`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from fleetplane.cli.common import console, fail


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
    ) -> None:
        """Check the local runtime: cgroups, subreaper, seccomp and each isolation tier (really started)."""
        if output not in ("table", "json"):
            fail(f"--output {output!r}: expected table or json")
        from fleetplane.runtime.doctor import run_checks

        with console.status("starting a sandbox per tier…"):
            checks = run_checks()
        if output == "json":
            console.print_json(json.dumps([asdict(c) for c in checks]))
            return
        table = Table(title="fleetplane doctor: the local runtime on this host")
        table.add_column("check")
        table.add_column("works")
        table.add_column("detail", overflow="fold")
        for check in checks:
            table.add_row(check.name, "[green]yes[/]" if check.ok else "[red]no[/]", check.detail)
        console.print(table)
