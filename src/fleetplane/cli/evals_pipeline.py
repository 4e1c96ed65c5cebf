"""`pipeline:NAME` eval targets: each case's input starts a run of the pipeline, worked to its end in this
process as `fleetplane run PIPELINE --input` works one; the run's output is the case's answer.

The plan comes from the suite's fleet directory when it defines the pipeline, else from the applied state
(what a server runs). Runs are started with trigger `eval`. The pipeline's own model calls (its LLM
router, LLM guardrails) go through the same server and key as the eval (unless `FLEETPLANE_GATEWAY_URL`
names another gateway), so they are governed and charged like the rest of the eval's traffic. A run that
does not succeed — failed, cancelled, stopped at an approval gate an eval cannot decide — fails its case
with the run's id and error.

`register(app)` installs the runner in `fleetplane.cli.evals_targets.TARGET_RUNNERS["pipeline"]`; the CLI
calls it with the command groups.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from fleetplane.cli.evals_targets import TARGET_RUNNERS, RunnerEnv, TargetNameError
from fleetplane.evals.results import Answer
from fleetplane.evals.targets import TargetFunction
from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.control import show
from fleetplane.pipelines.engine import start_run
from fleetplane.pipelines.gateway import GatewayClient
from fleetplane.pipelines.plan import Plan
from fleetplane.pipelines.runs import RUNNABLE, RunStore
from fleetplane.pipelines.runtime import find_plan, make_deps
from fleetplane.pipelines.sources import PipelineNotFound
from fleetplane.pipelines.worker import Worker
from fleetplane.store.db import Store

# While a server's worker holds a run's lease, this process waits for it rather than racing it.
POLL_SECONDS = 0.2


class PipelineRunFailed(RuntimeError):
    """A pipeline run that ended without an output to score."""


async def plan_of(store: Store, name: str, fleet: Path | None) -> Plan:
    """The pipeline's plan: from `fleet` when it defines it, else the applied one."""
    if fleet is not None and await asyncio.to_thread(fleet.is_dir):
        try:
            return await find_plan(store, name, fleet)
        except PipelineNotFound:
            pass
    return await find_plan(store, name)


def _deps(env: RunnerEnv) -> Deps:
    deps = make_deps(env.store)
    if deps.gateway is None:  # the pipeline's model calls go where the eval's do
        deps.gateway = GatewayClient(env.server.rstrip("/") + "/v1", env.api_key)
    return deps


async def run_to_end(deps: Deps, plan: Plan, case_input: Any) -> Answer:
    """Start a run, take turns on it until it leaves pending/running (or wait while another worker holds
    it), and return its output; `PipelineRunFailed` when it ended any other way than succeeded."""
    run, _ = await start_run(deps, plan, case_input, trigger="eval")
    worker = Worker(deps)
    runs = RunStore(deps.store)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        ended = await worker.turn(run.id)
        if ended is None:  # another worker (a server's) holds the lease: let it work
            await asyncio.sleep(POLL_SECONDS)
            ended = await runs.get(run.id)
            if ended is None:
                raise PipelineRunFailed(f"pipeline run {run.id} disappeared")
        if ended.status not in RUNNABLE:
            break
    latency = (loop.time() - started) * 1000.0
    if ended.status != "succeeded":
        detail = f": {ended.error}" if ended.error else ""
        raise PipelineRunFailed(f"pipeline run {run.id} ended {ended.status}{detail}")
    output = (await show(deps.store, run.id)).output
    text = output if isinstance(output, str) else None
    return Answer(
        text if text is not None else _json_text(output),
        structured=None if text is not None else output,
        latency_ms=latency,
        trace_id=ended.trace_id,
    )


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def pipeline_runner(env: RunnerEnv, name: str) -> TargetFunction:
    """`support-answer` -> a function running that pipeline on each case's input (its trigger input)."""
    if not name or "@" in name or "/" in name:
        raise TargetNameError(
            f"pipeline target {name!r}: expected pipeline:NAME, e.g. pipeline:support-answer"
        )
    plans: list[Plan] = []  # resolved once, on the first case, so every case runs the same plan
    lock = asyncio.Lock()

    async def run(case_input: Any) -> Answer:
        async with lock:
            if not plans:
                plans.append(await plan_of(env.store, name, env.fleet))
        deps = _deps(env)  # per case: its HTTP clients are closed when the case ends
        try:
            return await run_to_end(deps, plans[0], case_input)
        finally:
            await deps.http.aclose()
            if deps.gateway is not None:
                await deps.gateway.close()

    async def check() -> None:
        try:
            async with lock:
                if not plans:
                    plans.append(await plan_of(env.store, name, env.fleet))
        except PipelineNotFound as exc:
            raise TargetNameError(f"pipeline target {name!r}: {exc}") from None

    run.check = check  # type: ignore[attr-defined]  # `eval run` asks before the first case
    return run


def register(_app: typer.Typer) -> None:
    """Install the pipeline runner beside the built-in skill runner (no commands of its own)."""
    TARGET_RUNNERS["pipeline"] = pipeline_runner
