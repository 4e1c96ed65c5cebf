"""`fleetplane sim`: run the model simulator, check a simulator config, print the built-in one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from fleetplane.cli.common import console, fail

HELP = (
    "Run the model simulator: an OpenAI- and Anthropic-compatible server with seeded replies, realistic "
    "latency, provider-style rate limits and injectable faults.\n\n"
    "With no options it serves the built-in models (sim-large, sim-medium, sim-small, sim-claude, "
    "sim-embed) on 127.0.0.1 at a free port, which it prints. Point an SDK at it: "
    'openai.OpenAI(base_url="http://127.0.0.1:PORT/v1", api_key="any") or '
    'anthropic.Anthropic(base_url="http://127.0.0.1:PORT", api_key="any").\n\n'
    "A request can steer itself with a directive in its last user message, for example "
    "\\[\\[sim output_tokens=50 ttft_ms=200 status=429]]. The admin API under /sim/ opens faults and "
    "reads stats. docs/sim.md describes the config file, the directives and the admin API."
)


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="sim", help=HELP, no_args_is_help=False, rich_markup_mode=None)

    @group.callback(invoke_without_command=True)
    def serve(
        ctx: typer.Context,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config", "-c", help="YAML config file (models, latency, limits, faults, outages)."
            ),
        ] = None,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free port.")] = 0,
        seed: Annotated[
            int | None, typer.Option(help="Seed for replies, latency and faults (overrides the config).")
        ] = None,
        ready_file: Annotated[
            Path | None,
            typer.Option("--ready-file", help="Write the bound port to this file once listening."),
        ] = None,
        require_key: Annotated[
            str | None,
            typer.Option(
                "--require-key", help="Accept only this API key (Bearer or x-api-key); others get 401."
            ),
        ] = None,
        model: Annotated[
            list[str] | None,
            typer.Option(
                "--model",
                help="Also serve this model with default behaviour (repeatable); a name containing 'embed' "
                "is an embeddings model.",
            ),
        ] = None,
        instant: Annotated[
            bool, typer.Option("--instant", help="Answer with no latency (for tests).")
        ] = False,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        from fleetplane.sim.config import ConfigError
        from fleetplane.sim.server import ServeOptions, effective_config, run

        try:
            effective = effective_config(
                config, seed=seed, require_key=require_key, models=model or (), instant=instant
            )
        except ConfigError as exc:
            fail(str(exc))
        options = ServeOptions(
            config=effective, host=host, port=port, ready_file=ready_file, log_level=log_level
        )
        try:
            run(options)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=1)

    @group.command("check")
    def check(file: Annotated[Path, typer.Argument(help="The simulator config file to validate.")]) -> None:
        """Validate a simulator config file and list the models it serves."""
        from fleetplane.sim.config import ConfigError, load_config

        try:
            loaded = load_config(file)
        except ConfigError as exc:
            fail(str(exc))
        names = ", ".join(loaded.models) or "(none)"
        console.print(f"{file}: ok, {len(loaded.models)} model(s): {names}", markup=False, soft_wrap=True)

    @group.command("default-config")
    def default_config() -> None:
        """Print the built-in configuration as YAML, a starting point for your own file."""
        from fleetplane.sim.config import default_config as builtin

        data = builtin().model_dump(mode="json")
        console.print(yaml.safe_dump(data, sort_keys=False), markup=False, highlight=False, end="")

    app.add_typer(group, name="sim")
