"""How `fleetplane eval` prints: a run's summary, a comparison, a gate's verdicts and a suite's history."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.table import Table

from fleetplane.cli.common import console
from fleetplane.evals.gate import GateReport
from fleetplane.evals.results import Run
from fleetplane.manifests.evalsuite import EvalSuite


def _ci(values: list[float] | None, fmt: str = "{:.3f}") -> str:
    return "-" if not values else f"[{fmt.format(values[0])}, {fmt.format(values[1])}]"


def print_summary(r: Run) -> None:
    summary = r.summary or {}
    table = Table(title=f"{r.suite} -> {r.target}  run {r.id[:12]}  ({r.cases} cases x {r.epochs} epochs)")
    for column in ("dimension", "mean", "95% CI", "pass rate", "95% CI"):
        table.add_column(column, justify="left" if column == "dimension" else "right")
    for name, d in summary.get("dimensions", {}).items():
        raw = d.get("unit") == "raw"
        fmt = "{:.4g}" if raw else "{:.3f}"
        mean = "-" if "mean" not in d else fmt.format(d["mean"])
        rate = "-" if "pass_rate" not in d else f"{d['pass_rate']:.1%}"
        table.add_row(
            name + (f" ({d['goal']})" if raw else ""),
            mean,
            _ci(d.get("mean_ci"), fmt),
            rate,
            _ci(d.get("pass_ci")),
        )
    console.print(table)
    target = summary.get("target", {})
    score = summary.get("score")
    cost = target.get("cost_usd")
    p50, p95 = target.get("latency_ms_p50"), target.get("latency_ms_p95")
    console.print(
        f"score {'-' if score is None else f'{score:.3f}'}  |  target cost "
        f"{'-' if cost is None else f'${cost:.6f}'}  |  latency p50 {'-' if p50 is None else f'{p50:.0f} ms'}"
        f" p95 {'-' if p95 is None else f'{p95:.0f} ms'}  |  tokens {target.get('input_tokens', 0)} in / "
        f"{target.get('output_tokens', 0)} out  |  errors {target.get('errors', 0)}",
        markup=False,
    )
    for scorer, error in summary.get("scoring_errors", {}).items():
        console.print(
            f"scorer {scorer} failed on {error['count']} items, first: {error['first']}", markup=False
        )
    for tier, cost_row in summary.get("scoring", {}).items():
        console.print(
            f"scoring {tier}: {cost_row['items']} items, ${cost_row['cost_usd_per_item']:.2e}/item, "
            f"{cost_row['latency_ms_per_item']:.3f} ms/item",
            markup=False,
        )


def print_compare(
    a: Run, b: Run, report: GateReport, flips: list[tuple[str, str, bool | None, bool | None]]
) -> None:
    table = Table(title=f"{a.suite}: {a.id[:12]} ({a.target}) -> {b.id[:12]} ({b.target})")
    for column in ("dimension", "metric", "A", "B", "B - A", "95% CI", "verdict", "method", "cases"):
        table.add_column(column, justify="left" if column in ("dimension", "metric", "method") else "right")
    for v in report.dimensions:
        # The report orients every difference so that negative is worse; shown here as the plain B - A.
        sign = -1.0 if v.goal == "minimize" else 1.0
        low, high = sorted((sign * v.ci_low, sign * v.ci_high))
        verdict = "worse" if v.ci_high < 0 else "better" if v.ci_low > 0 else "same"
        table.add_row(
            v.dimension + (" (minimize)" if v.goal == "minimize" else ""), v.metric, f"{v.baseline:.4g}",
            f"{v.candidate:.4g}", f"{sign * v.delta:+.4g}", f"[{low:+.4g}, {high:+.4g}]", verdict, v.method,
            str(v.cases),
        )  # fmt: skip
    console.print(table)
    for dimension, case, x, y in flips[:20]:
        console.print(f"  {dimension}: {case}: {_verdict(x)} -> {_verdict(y)}", markup=False)
    if len(flips) > 20:
        console.print(f"  ... and {len(flips) - 20} more changed verdicts", markup=False)


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else "pass" if passed else "fail"


def print_gate(report: GateReport) -> None:
    for v in report.dimensions:
        style = {"block": "red", "warn": "yellow", "pass": "green"}[v.decision]
        console.print(f"[{style}]{v.decision.upper():5}[/{style}] {v.dimension} ({v.method}): ", end="")
        console.print(v.reason, markup=False)
    console.print(f"gate: {report.decision} (seed {report.seed}, {report.resamples} resamples)", markup=False)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%m-%d %H:%M")


def print_history(suite: str, runs: list[Run]) -> None:
    # 0-1 dimensions get a column each; cost and latency are in the last two.
    names = list(
        dict.fromkeys(
            n
            for r in runs
            for n, d in ((r.summary or {}).get("dimensions") or {}).items()
            if d.get("unit") != "raw"
        )
    )
    table = Table(title=f"{suite}: {len(runs)} runs (times in UTC)")
    for column in ("started", "run", "target", "trigger", "status", "score", *names, "cost $", "p50 ms"):
        table.add_column(
            column, justify="left" if column in ("started", "run", "target", "trigger", "status") else "right"
        )
    for r in runs:
        summary = r.summary or {}
        dims = summary.get("dimensions", {})
        cells = []
        for n in names:
            d = dims.get(n, {})
            cells.append(
                f"{d['pass_rate']:.1%}" if "pass_rate" in d else f"{d['mean']:.4g}" if "mean" in d else "-"
            )
        target = summary.get("target", {})
        score = summary.get("score")
        table.add_row(
            _when(r.started_at), r.id[:8], r.target, r.trigger, r.status,
            "-" if score is None else f"{score:.3f}", *cells,
            "-" if target.get("cost_usd") is None else f"{target['cost_usd']:.6f}",
            "-" if target.get("latency_ms_p50") is None else f"{target['latency_ms_p50']:.0f}",
        )  # fmt: skip
    console.print(table)


def _every(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"every {seconds / size:g}{unit}"
    return f"every {seconds:g}s"


def _cases(inline: int, files: int) -> str:
    shown = [f"{inline} inline"] if inline else []
    if files:
        shown.append(f"{files} file{'s' if files != 1 else ''}")
    return " + ".join(shown)


def print_suites(suites: list[EvalSuite], last_run: dict[str, float | None]) -> None:
    table = Table(title="eval suites (times in UTC)")
    for column in ("suite", "target", "cases", "epochs", "dimensions", "schedule", "last run"):
        table.add_column(column, justify="right" if column == "epochs" else "left")
    for suite in suites:
        spec = suite.spec
        dims = ", ".join(d.name + (f" (gate {d.gate.margin:g})" if d.gate else "") for d in spec.dimensions)
        last = last_run.get(suite.name)
        cases = _cases(len(spec.cases), len(spec.case_files))
        every = "-" if spec.schedule is None else _every(spec.schedule.every)
        target = f"{spec.target.kind}:{spec.target.name}"
        last_shown = "-" if last is None else _when(last)
        table.add_row(suite.name, target, cases, str(spec.epochs), dims, every, last_shown)
    console.print(table)
