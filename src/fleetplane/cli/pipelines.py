"""`fleetplane run` and `fleetplane runs`: pipelines from the command line (`approvals` and `audit` live in
`governance`; `register` adds them too). `run` starts a run and (unless --no-wait) works it in this
process until it finishes or stops at an approval gate; a server (`fleetplane up`) works pending runs
too, and leases keep the two from ever running the same step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from fleetplane.cli.common import FAILED, DatabaseURL, console, fail, format_time, now, with_store
from fleetplane.cli.governance import Actor, approvals_app, audit_app
from fleetplane.cli.ids import resolve_id
from fleetplane.cli.jsonopt import parse_json
from fleetplane.manifests.errors import ManifestErrors
from fleetplane.manifests.fields import parse_duration
from fleetplane.pipelines.control import ControlError, RunView, cancel, resume, show
from fleetplane.pipelines.engine import start_run
from fleetplane.pipelines.journal import prune
from fleetplane.pipelines.outcomes import StartError
from fleetplane.pipelines.runs import STATUSES, RunRecord, RunStore
from fleetplane.pipelines.runtime import find_plan, make_deps
from fleetplane.pipelines.sources import PipelineNotFound
from fleetplane.pipelines.worker import Worker
from fleetplane.store.db import Store
from fleetplane.store.tables import pipeline_runs
from fleetplane.telemetry.setup import Telemetry

runs_app = typer.Typer(
    name="runs", help="Pipeline runs: list, show, resume, cancel, prune.", no_args_is_help=True
)

Wait = Annotated[bool, typer.Option("--no-wait", help="Only queue it; a server's worker runs it.")]


def register(app: typer.Typer) -> None:
    app.command("run")(run_pipeline)
    app.add_typer(runs_app, name="runs")
    app.add_typer(approvals_app, name="approvals")  # approvals and audit: cli/governance.py
    app.add_typer(audit_app, name="audit")


def run_pipeline(
    pipeline: Annotated[str, typer.Argument(help="The pipeline's name.")],
    input: Annotated[str, typer.Option("--input", "-i", help="The run's input: JSON, or @file.json.")] = "{}",
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Read pipelines from this directory (default: applied)."),
    ] = None,
    dedupe: Annotated[str | None, typer.Option("--dedupe-key", help="Start at most one run per key.")] = None,
    no_wait: Wait = False,
    database_url: DatabaseURL = None,
) -> None:
    """Start a run of PIPELINE with --input; work it here until it ends or waits for an approval."""
    payload = parse_json("--input", input)
    if file is not None and not file.exists():
        fail(f"--file: no such file or directory: {file}; expected the directory of the fleet's manifests")

    async def work(store: Store) -> RunRecord:
        deps = _deps(store)
        try:
            plan = await find_plan(store, pipeline, file)
            run, created = await start_run(deps, plan, payload, trigger="manual", dedupe_key=dedupe)
        except (PipelineNotFound, StartError) as exc:
            fail(str(exc))
        except ManifestErrors as exc:
            fail(str(exc).splitlines()[0] + (" (and more)" if len(exc.errors) > 1 else ""))
        if not created and run.input != payload:
            fail(f"--dedupe-key {dedupe}: run {run.id} already has it, with a different input; use a new key")
        if not created:
            console.print(f"run {run.id} already exists for dedupe key {dedupe}")
        elif not no_wait:
            await _work(deps, run.id)
        found = await RunStore(store).get(run.id)
        assert found is not None
        return found

    ended = with_store(database_url, work)
    _summary(ended)


def _deps(store: Store) -> Any:
    try:
        return make_deps(store)
    except RuntimeError as exc:
        fail(str(exc), code=FAILED)


async def _work(deps: Any, run_id: str) -> None:
    # Real spans, so the run gets a trace id; exported where OTEL_EXPORTER_OTLP_ENDPOINT says, if set.
    telemetry = Telemetry.create("fleetplane-pipelines")
    deps.spans = telemetry.spans
    worker = Worker(deps)
    try:
        while (result := await worker.turn(run_id)) is not None and result.status in ("pending", "running"):
            pass
    finally:
        await deps.http.aclose()
        if deps.gateway is not None:
            await deps.gateway.close()
        telemetry.shutdown(timeout_s=5.0)


def _summary(run: RunRecord) -> None:
    console.print(f"run {run.id} ({run.pipeline}): {run.status}")
    if run.status == "waiting_approval" and run.attention:
        gate = run.attention.get("approval")
        console.print(f"waiting for approval {gate}: fleetplane approvals approve {gate}  (or reject)")
    if run.error:
        console.print(f"error: {run.error}", markup=False)
    if run.status in ("pending", "running"):  # --no-wait, or a server's worker took it first
        console.print(f"a worker runs it; follow it with `fleetplane runs show {run.id}`")
    if run.status in ("failed", "needs_attention", "cancelled"):
        raise typer.Exit(FAILED)


@runs_app.command("list")
def list_runs(
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline's runs.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only runs in this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    database_url: DatabaseURL = None,
) -> None:
    """The newest runs first."""
    if status is not None and status not in STATUSES:
        fail(f"--status {status!r}: expected one of {', '.join(sorted(STATUSES))}")

    async def work(store: Store) -> list[RunRecord]:
        return await RunStore(store).query(
            pipeline=pipeline, status=[status] if status else None, limit=limit
        )

    table = Table("run", "pipeline", "status", "trigger", "started", "trace", "error")
    for run in with_store(database_url, work):
        table.add_row(
            run.id,
            run.pipeline,
            run.status,
            run.trigger,
            format_time(run.created_at),
            run.trace_id or "-",
            (run.error or "")[:60],
        )
    console.print(table)


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="The run's id (or a unique prefix of it).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole record as JSON.")] = False,
    database_url: DatabaseURL = None,
) -> None:
    """A run: what it pinned, each step's journal entry, its reasoning trace, its approvals, its output."""

    async def work(store: Store) -> RunView:
        try:
            return await show(store, await resolve_id(store, pipeline_runs.c.id, run_id, "run"))
        except ControlError as exc:
            fail(str(exc))

    view = with_store(database_url, work)
    run = view.run
    if as_json:
        body = {
            "run": run.__dict__,
            "steps": view.steps,
            "approvals": view.approvals,
            "output": view.output,
            "reasoning": [r.__dict__ for r in view.reasoning],
        }
        console.print_json(orjson.dumps(body, default=str).decode())
        return
    console.print(f"run {run.id}  pipeline {run.pipeline}  status {run.status}  trigger {run.trigger}")
    console.print(f"plan {run.plan_digest}  trace {run.trace_id or '-'}")
    console.print(
        "skills: " + ", ".join(f"{k} -> {v['version']} ({v['digest'][:19]})" for k, v in run.lock.items())
    )
    if run.error:
        console.print(f"error: {run.error}", markup=False)
    steps = Table("step", "kind", "state", "attempt", "skill", "output", title="journal")
    for step in view.steps:
        steps.add_row(
            step["step_key"],
            step["kind"],
            step["state"],
            str(step["attempt"]),
            step["skill"] or "-",
            (step["output_digest"] or step["error"] or "-")[:48],
        )
    console.print(steps)
    reasoning = Table("kind", "step", "record", title="reasoning")
    for record in view.reasoning:
        reasoning.add_row(
            record.kind, record.step_key or "-", orjson.dumps(record.data, default=str).decode()[:160]
        )
    console.print(reasoning)
    for gate in view.approvals:
        console.print(
            f"approval {gate['id']} at {gate['gate']}: {gate['status']}"
            + (f" by {gate['decided_by']}" if gate["decided_by"] else ""),
            markup=False,
        )
    if view.output is not None:
        console.print("output: " + orjson.dumps(view.output).decode(), markup=False)


@runs_app.command("resume")
def resume_run(
    run_id: Annotated[str, typer.Argument(help="The run's id (or a unique prefix of it).")],
    step: Annotated[str | None, typer.Option("--step", help="The step a person decides about.")] = None,
    output: Annotated[
        str | None, typer.Option("--output", help="It happened: its output (JSON or @file).")
    ] = None,
    rerun: Annotated[bool, typer.Option("--rerun", help="It did not happen: run it.")] = False,
    actor: Actor = "cli",
    no_wait: Wait = False,
    database_url: DatabaseURL = None,
) -> None:
    """Resume a stopped run from its journal: nothing committed runs again."""
    value = parse_json("--output", output) if output is not None else None

    async def work(store: Store) -> RunRecord:
        full = await resolve_id(store, pipeline_runs.c.id, run_id, "run")
        found = await RunStore(store).get(full)
        if (
            found is not None
            and found.status == "succeeded"
            and step is None
            and output is None
            and not rerun
        ):
            # With a server up, its worker resumes an approved run before the person types this: done is done.
            console.print(f"run {full} already succeeded (a worker resumed it)")
            return found
        try:
            if found is None or found.status not in ("pending", "running"):
                await resume(store, full, now=now(), actor=actor, step=step, output=value, rerun=rerun)
        except ControlError as exc:
            fail(str(exc))
        if not no_wait:
            await _work(_deps(store), full)
        ended = await RunStore(store).get(full)
        assert ended is not None
        return ended

    _summary(with_store(database_url, work))


@runs_app.command("cancel")
def cancel_run(
    run_id: Annotated[str, typer.Argument(help="The run's id (or a unique prefix of it).")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    actor: Actor = "cli",
    database_url: DatabaseURL = None,
) -> None:
    """Cancel a run that has not finished; a worker running it stops at its next write."""

    async def work(store: Store) -> RunRecord:
        try:
            full = await resolve_id(store, pipeline_runs.c.id, run_id, "run")
            return await cancel(store, full, now=now(), actor=actor, reason=reason)
        except ControlError as exc:
            fail(str(exc))

    run = with_store(database_url, work)
    console.print(f"run {run.id}: {run.status} ({run.error})", markup=False)


@runs_app.command("prune")
def prune_runs(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Finished longer ago than this: 30d, 12h, 90m.")
    ],
    database_url: DatabaseURL = None,
) -> None:
    """Retention: drop the journals, reasoning and approvals of runs finished before then (run rows stay)."""
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        fail(f"--older-than: {exc}")

    async def work(store: Store) -> int:
        return await prune(store, before=now() - age)

    console.print(f"pruned the journals of {with_store(database_url, work)} runs")
