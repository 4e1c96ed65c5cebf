"""The `fleetplane` command. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="fleetplane",
    help=(
        "Run fleets of AI agents in production: the AI gateway, sandboxed agents, skills and pipelines, "
        "evals and traces, from a directory of manifests."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Imported here so `fleetplane --help` stays fast and each group owns its own module.
    from fleetplane.cli import (
        agents,
        doctor,
        evals,
        evals_online,
        evals_pipeline,
        keys,
        live,
        manifests,
        pipelines,
        render,
        review,
        sim,
        skill,
        traces,
        up,
        usage,
    )

    for group in (
        up,
        manifests,
        keys,
        usage,
        live,
        sim,
        traces,
        pipelines,
        skill,
        review,
        evals,
        evals_online,
        evals_pipeline,
        render,
        doctor,
        agents,
    ):
        group.register(app)


def main() -> None:
    _register()
    app()
