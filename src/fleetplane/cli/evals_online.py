"""`fleetplane eval online`, `eval pareto` and `eval ab`, added to the `eval` group of `cli.evals`.

`online` shows production evals as they accumulate. `pareto SUITE --models a,b,c` runs the suite once per
candidate model (evals' own run, stored like any other), then prints every candidate's quality per
dimension, cost per call and p50 latency, marks the non-dominated ones and says who dominates the rest,
and writes an SVG plot. `ab assign` says which arm a key falls in; `ab report` compares two arms on the
online scores (paired by input, see `evals.abtest`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from fleetplane.cli.admin_client import DEFAULT_SERVER
from fleetplane.cli.common import DatabaseURL, console, fail, now, with_store
from fleetplane.cli.evals import ApiKey, Fleet, Server, _load, eval_app
from fleetplane.cli.evals_targets import pick_target
from fleetplane.evals.abtest import ABTest, Arm, report
from fleetplane.evals.judges import FamilyError, JudgeClient, ModelCatalog, configure_judges
from fleetplane.evals.online.summary import GROUPS, OnlineRow, OnlineTotals, summarize, totals
from fleetplane.evals.pareto import Candidate, dominated_by, frontier, plot_svg
from fleetplane.evals.results import RunRepository
from fleetplane.evals.runner import run_suite
from fleetplane.manifests.errors import ManifestErrors
from fleetplane.manifests.fields import parse_duration
from fleetplane.manifests.loader import load
from fleetplane.manifests.model import Model
from fleetplane.store.db import Store

ab_app = typer.Typer(
    name="ab", help="A/B on live traffic: which arm a key is in, and the report.", no_args_is_help=True
)
eval_app.add_typer(ab_app, name="ab")


def register(app: typer.Typer) -> None:
    """The commands live on `cli.evals.eval_app`; importing this module added them."""


def _judges(fleet: Path, server: str, key: str | None) -> None:
    """Judges call the same server with the same key; families come from the fleet's Model manifests."""
    try:
        models = load(fleet).of_kind(Model)
    except ManifestErrors as exc:
        fail(str(exc))
    configure_judges(JudgeClient(server.rstrip("/"), key or "", ModelCatalog.from_manifests(models)))


@eval_app.command("pareto")
def pareto_command(
    suite: Annotated[str, typer.Argument(help="The suite's name in --fleet, or a suite file.")],
    models: Annotated[str, typer.Option("--models", help="Candidate model groups, comma-separated: a,b,c.")],
    fleet: Fleet = Path("."),
    plot: Annotated[
        Path | None, typer.Option(help="Where to write the SVG plot [default: pareto-SUITE.svg].")
    ] = None,
    seed: Annotated[int, typer.Option(help="The bootstrap seed of each run's intervals.")] = 0,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
    database_url: DatabaseURL = None,
) -> None:
    """Run the suite over candidate models; print the non-dominated set (quality, cost, latency); plot it."""
    names = [m.strip() for m in models.split(",") if m.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        fail(f"--models {models!r}: expected two or more distinct model groups, e.g. --models fast,big")
    if output not in ("table", "json"):
        fail(f"unknown output {output!r}; expected table or json")
    key = api_key or os.environ.get("OPENAI_API_KEY")
    _judges(fleet, server, key)
    loaded = _load(suite, fleet)
    known = {m.name for m in loaded.state.of_kind(Model)}
    unknown = [n for n in names if n not in known]
    if unknown:
        fail(f"--models: {', '.join(unknown)} not a Model in {fleet}; known: {', '.join(sorted(known))}")
    headers = {"authorization": f"Bearer {key}"} if key else {}

    async def work(store: Store) -> tuple[list[Candidate], dict[str, str]]:
        candidates: list[Candidate] = []
        refused: dict[str, str] = {}
        async with httpx.AsyncClient(base_url=server.rstrip("/"), headers=headers, timeout=600) as client:
            for name in names:
                target = pick_target(loaded, f"model:{name}", client)
                try:
                    run = await run_suite(loaded, target, RunRepository(store), seed=seed, trigger="pareto")
                except FamilyError as exc:  # a candidate of the judge's family: not judged by it
                    refused[name] = str(exc)
                    continue
                candidates.append(Candidate.from_run(name, run))
        return candidates, refused

    candidates, refused = with_store(database_url, work)
    best = {c.name for c in frontier(candidates)}
    path = plot_svg(
        candidates, plot or Path(f"pareto-{loaded.name}.svg"), title=f"{loaded.name}: quality vs cost"
    )
    if output == "json":
        rows = [
            {**c.__dict__, "frontier": c.name in best, "dominated_by": dominated_by(c, candidates)}
            for c in candidates
        ]
        console.print_json(json.dumps({"candidates": rows, "refused": refused, "plot": str(path)}))
        return
    dims = sorted({d for c in candidates for d in c.quality})
    table = Table("model", *dims, "score", "cost/call (USD)", "latency p50", "frontier")
    for c in sorted(candidates, key=lambda c: (c.name not in best, -c.score)):
        verdict = "yes" if c.name in best else "dominated by " + ", ".join(dominated_by(c, candidates))
        table.add_row(
            c.name,
            *(f"{c.quality.get(d, 0):.3f}" for d in dims),
            f"{c.score:.3f}",
            f"{c.cost_usd:.6f}",
            f"{c.latency_ms:.0f} ms",
            verdict,
            style="bold" if c.name in best else "dim",
        )
    console.print(table)
    for name, reason in refused.items():
        console.print(f"{name}: not run: {reason}", markup=False)
    console.print(f"plot: {path}", markup=False)


def _arm(flag: str, text: str) -> Arm:
    kind, sep, value = text.partition(":")
    if not sep or not value or kind not in ("model", "prompt"):
        fail(f"{flag} {text!r}: expected model:NAME or prompt:VERSION")
    return Arm(model=value) if kind == "model" else Arm(prompt_version=value)


def _test(name: str, a: str, b: str, split: float, min_pairs: int, seed: int = 0) -> ABTest:
    try:
        return ABTest(name, _arm("--a", a), _arm("--b", b), split=split, min_pairs=min_pairs, seed=seed)
    except ValueError as exc:
        fail(str(exc))


TestName = Annotated[str, typer.Option("--test", help="The test's name (salts the split).")]
ArmA = Annotated[str, typer.Option("--a", help="Arm A: model:NAME or prompt:VERSION.")]
ArmB = Annotated[str, typer.Option("--b", help="Arm B: model:NAME or prompt:VERSION.")]
Split = Annotated[float, typer.Option(help="The share of keys in arm A.")]


@ab_app.command("assign")
def ab_assign(
    keys: Annotated[list[str], typer.Argument(help="Keys to place: trace, conversation or user ids.")],
    test: TestName,
    a: ArmA,
    b: ArmB,
    split: Split = 0.5,
) -> None:
    """Which arm each key falls in (the same answer in every process)."""
    chosen = _test(test, a, b, split, 1)
    for key in keys:
        console.print(f"{key}\t{chosen.assign(key)}\t{chosen.arm(key).label()}", markup=False)


@ab_app.command("report")
def ab_report(
    test: TestName,
    a: ArmA,
    b: ArmB,
    split: Split = 0.5,
    min_pairs: Annotated[int, typer.Option(help="Inputs answered by both arms needed for a verdict.")] = 30,
    since: Annotated[str | None, typer.Option(help="Only traffic of the last DURATION: 1h, 7d.")] = None,
    seed: Annotated[int, typer.Option(help="The paired bootstrap's seed (recorded).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database_url: DatabaseURL = None,
) -> None:
    """Arm means and the paired difference B - A per scorer, from the online scores."""
    if min_pairs < 1:
        fail(f"--min-pairs {min_pairs}: expected 1 or more")
    start = _since(since)
    chosen = _test(test, a, b, split, min_pairs, seed)
    data: dict[str, Any] = with_store(database_url, lambda store: report(store, chosen, since=start))
    if as_json:
        console.print_json(json.dumps(data))
        return
    if not data["dimensions"]:
        console.print(f"no online scores for {data['a']} or {data['b']} yet", markup=False)
        return
    table = Table("scorer", "dimension", f"A: {data['a']}", f"B: {data['b']}", "pairs", "B - A (95% CI)")
    for d in data["dimensions"]:
        verdict = (
            f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
            if d["ready"]
            else f"waiting ({d['pairs']}/{min_pairs} pairs)"
        )
        table.add_row(
            d["scorer"],
            d["dimension"],
            _mean(d["a_mean"], d["a_n"]),
            _mean(d["b_mean"], d["b_n"]),
            str(d["pairs"]),
            verdict,
        )
    console.print(table)
    if data["misrouted"]:
        console.print(
            f"{data['misrouted']} answer(s) came from the arm their key is not in; not used", markup=False
        )


def _mean(value: float | None, n: int) -> str:
    return "-" if value is None else f"{value:.3f} (n={n})"


@eval_app.command("online")
def online_command(
    by: Annotated[str, typer.Option(help="Group by model, agent, rule, team or prompt_version.")] = "model",
    since: Annotated[str | None, typer.Option(help="Only traffic of the last DURATION: 15m, 1h, 7d.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database_url: DatabaseURL = None,
) -> None:
    """Production evals as they accumulate: items scored, sampled, flagged and judged; per group and scorer
    the mean score, pass rate and what scoring cost."""
    if by not in GROUPS:
        fail(f"--by {by!r}: expected one of {', '.join(GROUPS)}")
    start = _since(since)

    async def read(store: Store) -> tuple[OnlineTotals, list[OnlineRow]]:
        return await totals(store, since=start), await summarize(store, by=by, since=start)

    total, rows = with_store(database_url, read)
    if as_json:
        console.print_json(json.dumps({"totals": total.__dict__, "rows": [r.as_json() for r in rows]}))
        return
    console.print(
        f"{total.items} items scored online: {total.sampled} in the judge sample, {total.flagged} flagged, "
        f"{total.judged} judged ({total.judge_failed} failed, {total.judge_refused} refused), "
        f"{total.in_review} in the review queue",
        markup=False,
    )
    if not rows:
        return
    table = Table(
        by, "dimension", "scorer", "tier", "items", "mean", "pass rate", "scoring cost (USD)", "ms/score"
    )
    for r in rows:
        table.add_row(
            r.group or "-",
            r.dimension,
            r.scorer,
            r.tier,
            str(r.items),
            f"{r.mean:.3f}",
            "-" if r.pass_rate is None else f"{r.pass_rate:.0%}",
            f"{r.cost_usd:.6f}",
            f"{r.latency_ms:.2f}",
        )
    console.print(table)


def _since(since: str | None) -> float | None:
    """When `--since DURATION` began (None: all traffic); a bad duration ends the command."""
    if since is None:
        return None
    try:
        return now() - parse_duration(since)
    except ValueError as exc:
        fail(f"--since {since!r}: {exc}")
