"""`fleetplane eval`: run a suite against a target, compare two runs, gate a deploy on them, and show a
suite's history. Other modules add commands to `eval_app` (pareto, ab).

Targets: `model:NAME` (a model group, through the gateway's chat API at --server), `agent:NAME`
(`POST /agents/NAME/invoke` at --server); `skill:NAME@VERSION` and `pipeline:NAME` run through a function
registered in `evals_targets.TARGET_RUNNERS` (kind -> factory(env, name) -> async run(input)); skill
versions are built in (`evals_targets`), pipelines registered with the CLI (`evals_pipeline`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fleetplane.cli.admin_client import DEFAULT_SERVER
from fleetplane.cli.common import FAILED, DatabaseURL, console, err_console, fail, with_store
from fleetplane.cli.evals_targets import RunnerEnv, pick_target, preflight
from fleetplane.cli.evals_views import print_compare, print_gate, print_history, print_suites, print_summary
from fleetplane.evals.gate import GatePolicy, GateReport, evaluate_gate
from fleetplane.evals.judges import JudgeClient, ModelCatalog, configure_judges
from fleetplane.evals.results import Run, RunNotFound, RunRepository
from fleetplane.evals.runner import run_suite
from fleetplane.evals.schedule import SuiteScheduler
from fleetplane.evals.scorers.embedding import EmbeddingClient, configure_embeddings
from fleetplane.evals.suites import LoadedSuite, SuiteNotFound, load_suite
from fleetplane.evals.targets import Target
from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.errors import ManifestErrors
from fleetplane.manifests.evalsuite import EvalSuite
from fleetplane.manifests.loader import load
from fleetplane.manifests.model import Model
from fleetplane.store.db import Store

eval_app = typer.Typer(name="eval", help="Eval suites: run, compare, gate, history.", no_args_is_help=True)


Fleet = Annotated[
    Path,
    typer.Option(
        "--fleet",
        "-f",
        envvar="FLEETPLANE_FLEET",
        show_envvar=True,
        help="The manifest directory holding the suite.",
    ),
]
Server = Annotated[
    str,
    typer.Option(
        "--server", envvar="FLEETPLANE_URL", show_envvar=True, help="The fleetplane server (gateway) to call."
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="FLEETPLANE_API_KEY", show_envvar=True, help="A virtual key for the gateway."
    ),
]
Output = Annotated[str, typer.Option("--output", "-o", help="table or json.")]


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


def _judges(state: DesiredState, server: str, key: str | None) -> None:
    """Judge and embedding scorers call the same gateway, and know the fleet's models (families, prices)."""
    models = state.of_kind(Model)
    configure_judges(JudgeClient(server.rstrip("/"), key or "", ModelCatalog.from_manifests(models)))
    prices = {m.name: m.spec.price.input for m in models if m.spec.price is not None}
    configure_embeddings(EmbeddingClient(server.rstrip("/"), key or "", prices))


def _load(suite: str, fleet: Path, prepare: Callable[[DesiredState], None] | None = None) -> LoadedSuite:
    try:
        if suite.endswith((".yaml", ".yml")) and Path(suite).is_file():
            return load_suite(suite, prepare=prepare)
        return load_suite(fleet, suite, prepare=prepare)
    except SuiteNotFound as exc:
        fail(str(exc))
    except FileNotFoundError as exc:
        fail(str(exc))
    except ManifestErrors as exc:
        *others, last = exc.errors
        for error in others:
            err_console.print(f"error: {error}", style="red", markup=False, soft_wrap=True)
        fail(str(last))


@eval_app.command("run")
def run_command(
    suite: Annotated[str, typer.Argument(help="The suite's name in --fleet, or a suite file.")],
    fleet: Fleet = Path("."),
    target: Annotated[
        str | None, typer.Option(help="Instead of the suite's target: model:NAME, agent:NAME ...")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, max=100, help="Runs per case (default: the suite's).")
    ] = None,
    seed: Annotated[int, typer.Option(help="The bootstrap seed of the summary's intervals.")] = 0,
    concurrency: Annotated[int | None, typer.Option(min=1, max=256, help="Cases in flight.")] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    output: Output = "table",
    database_url: DatabaseURL = None,
) -> None:
    """Run a suite against its target (or --target) and store every score; print the summary."""
    if output not in ("table", "json"):
        fail(f"unknown output {output!r}; expected table or json")
    key = api_key or os.environ.get("OPENAI_API_KEY")
    loaded = _load(suite, fleet, prepare=lambda state: _judges(state, server, key))
    headers = {"authorization": f"Bearer {key}"} if key else {}

    async def work(store: Store) -> Run:
        async with httpx.AsyncClient(base_url=server.rstrip("/"), headers=headers, timeout=600) as client:
            chosen = pick_target(loaded, target, client, RunnerEnv(store, server, key, fleet))
            await preflight(chosen)
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, transient=True, disable=output == "json") as bar:
                task = bar.add_task(
                    f"{loaded.name} -> {chosen.name}",
                    total=len(loaded.cases) * (epochs or loaded.manifest.spec.epochs),
                )
                return await run_suite(
                    loaded,
                    chosen,
                    RunRepository(store),
                    epochs=epochs,
                    seed=seed,
                    concurrency=concurrency,
                    progress=lambda done, _total: bar.update(task, completed=done),
                    options={"gates": _gates(loaded)},
                )

    finished = with_store(database_url, work)
    if output == "json":
        console.print_json(json.dumps(_run_json(finished)))
    else:
        print_summary(finished)
    called = (finished.summary or {}).get("target", {})
    if called.get("calls") and called.get("errors") == called["calls"]:
        fail(f"every call to the target failed; the first: {called.get('first_error')}", code=FAILED)


def _gates(suite: LoadedSuite) -> dict[str, dict[str, Any]]:
    return {
        d.name: {"margin": d.spec.gate.margin, "goal": d.spec.goal}
        for d in suite.dimensions
        if d.spec.gate is not None
    }


def _run_json(r: Run) -> dict[str, Any]:
    return {k: v for k, v in vars(r).items()}


async def _two_runs(store: Store, a: str, b: str) -> tuple[RunRepository, Run, Run]:
    repo = RunRepository(store)
    try:
        first, second = await repo.get(a), await repo.get(b)
    except RunNotFound as exc:
        fail(str(exc))
    if first.suite != second.suite:
        fail(
            f"run {first.id[:12]} is of suite {first.suite!r} and run {second.id[:12]} of "
            f"{second.suite!r}; compare runs of one suite"
        )
    return repo, first, second


def _policies(candidate: Run, margin: float | None) -> dict[str, GatePolicy] | None:
    gates = (candidate.options or {}).get("gates") or {}
    if not gates:
        return None
    return {
        name: GatePolicy(margin if margin is not None else g["margin"], g["goal"])
        for name, g in gates.items()
    }


@eval_app.command("compare")
def compare_command(
    run_a: Annotated[str, typer.Argument(help="The first (baseline) run id, or a unique prefix.")],
    run_b: Annotated[str, typer.Argument(help="The second (candidate) run id, or a unique prefix.")],
    seed: Annotated[int, typer.Option(help="The paired bootstrap's seed.")] = 0,
    output: Output = "table",
    database_url: DatabaseURL = None,
) -> None:
    """Two runs of one suite side by side, paired by case id: every dimension's difference with its 95% CI,
    and the cases whose verdict changed."""
    if output not in ("table", "json"):
        fail(f"unknown output {output!r}; expected table or json")

    async def work(
        store: Store,
    ) -> tuple[Run, Run, GateReport, list[tuple[str, str, bool | None, bool | None]]]:
        repo, a, b = await _two_runs(store, run_a, run_b)
        base, cand = await repo.observations(a.id), await repo.observations(b.id)
        goals = {n: d.get("goal", "maximize") for n, d in (b.summary or {}).get("dimensions", {}).items()}
        policies = {n: GatePolicy(0.0, g) for n, g in goals.items()} or None
        report = evaluate_gate(
            base, cand, policies=policies, seed=seed, baseline_run=a.id, candidate_run=b.id
        )
        before = {(o.dimension, o.case_id, o.epoch): o.passed for o in base}
        flips = [
            (o.dimension, o.case_id, before.get((o.dimension, o.case_id, o.epoch)), o.passed)
            for o in cand
            if (o.dimension, o.case_id, o.epoch) in before
            and before[(o.dimension, o.case_id, o.epoch)] != o.passed
        ]
        return a, b, report, flips

    a, b, report, flips = with_store(database_url, work)
    if output == "json":
        data = report.to_dict() | {
            "changed": [{"dimension": d, "case": c, "before": x, "after": y} for d, c, x, y in flips]
        }
        console.print_json(json.dumps(data))
        return
    print_compare(a, b, report, flips)


@eval_app.command("gate")
def gate_command(
    baseline: Annotated[str, typer.Option("--baseline", help="The baseline run id (or a unique prefix).")],
    candidate: Annotated[str, typer.Option("--candidate", help="The candidate run id (or a unique prefix).")],
    margin: Annotated[
        float | None, typer.Option(min=0, help="The margin on every gated dimension (default: the suite's).")
    ] = None,
    seed: Annotated[int, typer.Option(help="The paired bootstrap's seed (recorded in the report).")] = 0,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = 10_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the machine-readable gate report.")] = False,
    database_url: DatabaseURL = None,
) -> None:
    """Block (exit 1) when a gated dimension regresses beyond its margin: the upper end of the 95% CI of
    candidate - baseline is below -margin (exact McNemar, paired or cluster bootstrap, Holm-adjusted)."""

    async def work(store: Store) -> GateReport:
        repo, a, b = await _two_runs(store, baseline, candidate)
        try:
            return evaluate_gate(
                await repo.observations(a.id),
                await repo.observations(b.id),
                policies=_policies(b, margin),
                margin=margin,
                seed=seed,
                resamples=resamples,
                baseline_run=a.id,
                candidate_run=b.id,
            )
        except ValueError as exc:
            fail(str(exc))

    report = with_store(database_url, work)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        print_gate(report)
    if report.blocked:
        raise typer.Exit(FAILED)


def _target_factory(
    client: httpx.AsyncClient, store: Store, server: str, key: str | None, fleet: Path | None = None
) -> Callable[[LoadedSuite], Target]:
    def make(suite: LoadedSuite) -> Target:
        _judges(suite.state, server, key)
        return pick_target(suite, None, client, RunnerEnv(store, server, key, fleet))

    return make


async def serve_schedules(
    store: Store, fleet: Path, server: str, api_key: str | None, stop: asyncio.Event, *, poll: float = 60.0
) -> None:
    """Run the fleet's scheduled suites against `server` until `stop` is set — what `fleetplane up` (or
    any long-running composition) starts beside the gateway to keep the suites' time series going."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=server.rstrip("/"), headers=headers, timeout=600) as client:
        make = _target_factory(client, store, server, api_key, fleet)
        await SuiteScheduler(fleet, RunRepository(store), make, time.time).serve(stop, poll=poll)


@eval_app.command("scheduled")
def scheduled_command(
    fleet: Fleet = Path("."),
    watch: Annotated[bool, typer.Option("--watch", help="Keep running, checking every --poll.")] = False,
    poll: Annotated[float, typer.Option(min=1, help="Seconds between checks with --watch.")] = 60.0,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    database_url: DatabaseURL = None,
) -> None:
    """Run every suite whose `schedule` is due (from cron; or --watch to keep going)."""
    key = api_key or os.environ.get("OPENAI_API_KEY")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    if not fleet.exists():
        fail(f"no such file or directory: {fleet}")

    async def work(store: Store) -> list[Run]:
        if watch:
            await serve_schedules(store, fleet, server, key, asyncio.Event(), poll=poll)
            return []
        async with httpx.AsyncClient(base_url=server.rstrip("/"), headers=headers, timeout=600) as client:
            make = _target_factory(client, store, server, key, fleet)
            return await SuiteScheduler(fleet, RunRepository(store), make, time.time).tick()

    try:
        runs = with_store(database_url, work)
    except ManifestErrors as exc:
        fail(str(exc.errors[0]))
    for r in runs:
        score = (r.summary or {}).get("score")
        shown = "-" if score is None else f"{score:.3f}"
        console.print(f"ran {r.suite} -> {r.target}: run {r.id[:12]}, score {shown}", markup=False)
    if not runs:
        console.print("no scheduled suite is due", markup=False)


@eval_app.command("suites")
def suites_command(fleet: Fleet = Path("."), database_url: DatabaseURL = None) -> None:
    """The fleet's eval suites: target, cases, dimensions (gated ones with a margin), schedule, last run."""
    try:
        state = load(fleet)
    except FileNotFoundError as exc:
        fail(str(exc))
    except ManifestErrors as exc:
        fail(str(exc.errors[0]))
    suites = state.of_kind(EvalSuite)
    if not suites:
        fail(f"no EvalSuite in {fleet}", code=FAILED)

    async def work(store: Store) -> dict[str, float | None]:
        repo = RunRepository(store)
        return {s.name: await repo.last_started(s.name) for s in suites}

    print_suites(suites, with_store(database_url, work))


@eval_app.command("history")
def history_command(
    suite: Annotated[str, typer.Argument(help="The suite's name.")],
    limit: Annotated[int, typer.Option(min=1, help="The last N runs.")] = 30,
    output: Output = "table",
    database_url: DatabaseURL = None,
) -> None:
    """A suite's runs over time: score, each dimension, cost and latency (scheduled runs included)."""
    if output not in ("table", "json"):
        fail(f"unknown output {output!r}; expected table or json")
    runs = with_store(database_url, lambda store: RunRepository(store).runs(suite, limit=limit))
    if not runs:
        fail(f"no runs of suite {suite!r}; start one with `fleetplane eval run {suite}`", code=FAILED)
    if output == "json":
        console.print_json(json.dumps([_run_json(r) for r in runs]))
        return
    print_history(suite, runs)
