"""`fleetplane sim`: run the model simulator, check a simulator config, print the built-in one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
import yaml

from fleetplane.cli.common import FAILED, console, err_console, fail

if TYPE_CHECKING:
    from fleetplane.sim.load import LoadResult, LoadSpec

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

    register_load(group)
    app.add_typer(group, name="sim")


LOAD_HELP = (
    "Send an open-loop load to an OpenAI- or Anthropic-compatible endpoint (the gateway, a provider, the "
    "simulator) and report latency percentiles, errors by status and the achieved rate.\n\n"
    "Requests leave at a constant rate whether or not earlier ones finished, and latency counts from each "
    "request's scheduled send time, so a server that queues cannot hide it. Requests scheduled during the "
    "warm-up are sent but not counted. URL is a base URL (http://127.0.0.1:8700 or .../v1) or the full "
    "endpoint URL; several URLs (replicas of one gateway) take the requests in turn, round-robin. "
    "Example: fleetplane sim load http://127.0.0.1:8700/v1 --rate 200 --duration 30 "
    "--model chat-small --stream --directive output_tokens=50 --api-key $KEY"
)


def register_load(group: typer.Typer) -> None:
    @group.command("load", help=LOAD_HELP)
    def load(
        url: Annotated[
            list[str],
            typer.Argument(
                metavar="URL",
                help="Base URL or endpoint URL of the target; several take the requests round-robin.",
            ),
        ],
        rate: Annotated[float, typer.Option(help="Requests per second, sent on schedule.")] = 100.0,
        duration: Annotated[float, typer.Option(help="Measured seconds, after the warm-up.")] = 30.0,
        warmup: Annotated[float, typer.Option(help="Seconds of load sent first and not counted.")] = 5.0,
        api: Annotated[
            Literal["openai", "anthropic"],
            typer.Option(help="openai (chat completions) or anthropic (messages)."),
        ] = "openai",
        model: Annotated[str, typer.Option(help="The model every request names.")] = "sim-small",
        stream: Annotated[bool, typer.Option("--stream", help="Stream the responses (SSE).")] = False,
        message_chars: Annotated[
            int, typer.Option("--message-chars", help="Length of the user message in characters.")
        ] = 200,
        directive: Annotated[
            list[str] | None,
            typer.Option(
                "--directive",
                help="A simulator directive key=value added to every message, e.g. output_tokens=50 "
                "(repeatable).",
            ),
        ] = None,
        max_tokens: Annotated[
            int | None, typer.Option("--max-tokens", help="max_tokens of every request (anthropic: 1024).")
        ] = None,
        api_key: Annotated[
            str | None,
            typer.Option("--api-key", envvar="FLEETPLANE_API_KEY", show_envvar=True, help="The API key."),
        ] = None,
        extra_body: Annotated[
            str | None,
            typer.Option(
                "--extra-body", help="JSON object merged into every body, e.g. '{\"temperature\": 0}'."
            ),
        ] = None,
        unique: Annotated[
            bool, typer.Option("--unique", help="Number every message so no two bodies are equal.")
        ] = False,
        connections: Annotated[int, typer.Option(help="Connection pool size.")] = 10_000,
        timeout: Annotated[float, typer.Option(help="Seconds per request from its scheduled time.")] = 60.0,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the result as JSON on stdout (progress goes to stderr).")
        ] = False,
    ) -> None:
        import orjson

        from fleetplane.sim.load import LoadSpec, run

        extra: dict[str, object] = {}
        if extra_body:
            try:
                parsed = orjson.loads(extra_body)
            except orjson.JSONDecodeError as exc:
                fail(f"--extra-body is not JSON: {exc}")
            if not isinstance(parsed, dict):
                fail("--extra-body must be a JSON object")
            extra = parsed
        try:
            spec = LoadSpec(
                url=url[0],
                more_urls=tuple(url[1:]),
                rate=rate,
                duration=duration,
                warmup=warmup,
                api=api,
                model=model,
                stream=stream,
                message_chars=message_chars,
                directives=tuple(directive or ()),
                max_tokens=max_tokens,
                api_key=api_key,
                extra_body=extra,
                unique=unique,
                connections=connections,
                timeout=timeout,
            )
        except ValueError as exc:
            fail(str(exc))
        result = _run_with_progress(spec, run)
        if as_json:
            typer.echo(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
        else:
            _print_result(result)
        if result.ok == 0:
            raise typer.Exit(FAILED)


def _run_with_progress(spec: LoadSpec, run: Callable[..., LoadResult]) -> LoadResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fleetplane.sim.load import Progress as LoadProgress
    from fleetplane.sim.load import plan

    total = plan(spec.rate, spec.warmup, spec.duration).total
    columns = (
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("answered {task.fields[finished]}, errors {task.fields[errors]}"),
        TimeElapsedColumn(),
    )
    # On stderr, so --json output on stdout stays parseable.
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("warmup", total=total, finished=0, errors=0)

        def update(p: LoadProgress) -> None:
            bar.update(task, completed=p.sent, description=p.phase, finished=p.finished, errors=p.errors)

        return run(spec, on_progress=update)


def _print_result(result: LoadResult) -> None:
    from rich.table import Table

    spec = result.spec
    mode = "stream" if spec.stream else "plain"
    targets = f" on {1 + len(spec.more_urls)} targets" if spec.more_urls else ""
    console.print(
        f"{result.requests} requests to {spec.model}{targets} ({spec.api}, {mode}) over "
        f"{spec.duration:g}s after {spec.warmup:g}s warm-up: offered {result.offered_rate:g}/s, "
        f"sent {result.sent_rate:.1f}/s, answered {result.achieved_rate:.1f}/s",
        markup=False,
        soft_wrap=True,
    )
    errors = ", ".join(f"{k}: {v}" for k, v in result.errors.items()) or "none"
    console.print(f"ok {result.ok}, errors {errors}", markup=False, soft_wrap=True)
    table = Table("ms", "p50", "p90", "p99", "max", "mean")
    rows = [("latency", result.latency_ms), ("ttfb", result.ttfb_ms), ("send lag", result.send_lag_ms)]
    for name, summary in rows:
        if summary is not None:
            values = (summary.p50, summary.p90, summary.p99, summary.max, summary.mean)
            table.add_row(name, *(f"{v:.2f}" for v in values))
    console.print(table)
