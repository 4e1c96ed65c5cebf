"""Turning the gateway overhead runs into numbers: overhead per percentile, CPU per 1,000 requests, the
spread over repetitions, a rich table and a markdown snippet for docs/benchmarks.md.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from common import spread
from rich.console import Console
from rich.table import Table

QUANTILES = ("p50", "p90", "p99")
TARGET_MS = {"p50": 1.0, "p99": 5.0}  # docs/benchmarks.md: passthrough at 200 req/s


def _spreads(values: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {key: spread(v) for key, v in values.items() if v}


def summarize(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (profile, mode): medians and min/max over the repetitions."""
    grouped: dict[tuple[str, str], dict[int, dict[str, dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for run in runs:
        grouped[run["profile"], run["mode"]][run["repetition"]][run["target"]] = run
    rows = []
    for (profile, mode), reps in grouped.items():
        direct: dict[str, list[float]] = defaultdict(list)
        gateway: dict[str, list[float]] = defaultdict(list)
        overhead: dict[str, list[float]] = defaultdict(list)
        ttfb_overhead: dict[str, list[float]] = defaultdict(list)
        cpu: dict[str, list[float]] = defaultdict(list)
        cpu_direct: dict[str, list[float]] = defaultdict(list)
        memory: dict[str, list[float]] = defaultdict(list)
        loop_share: dict[int, list[float]] = defaultdict(list)
        errors: dict[str, Counter[str]] = {"direct": Counter(), "gateway": Counter()}
        for pair in reps.values():
            if set(pair) != {"direct", "gateway"}:
                continue
            d, g = pair["direct"]["result"], pair["gateway"]["result"]
            errors["direct"].update(d["errors"])
            errors["gateway"].update(g["errors"])
            if d["latency_ms"] is None or g["latency_ms"] is None:
                continue
            for q in QUANTILES:
                direct[q].append(d["latency_ms"][q])
                gateway[q].append(g["latency_ms"][q])
                overhead[q].append(g["latency_ms"][q] - d["latency_ms"][q])
                if d["ttfb_ms"] and g["ttfb_ms"]:
                    ttfb_overhead[q].append(g["ttfb_ms"][q] - d["ttfb_ms"][q])
            for name, value in pair["gateway"]["cpu_s_per_1k"].items():
                cpu[name].append(value)
            for name, value in pair["direct"]["cpu_s_per_1k"].items():
                cpu_direct[name].append(value)
            for name, value in pair["gateway"].get("gateway_memory_mb", {}).items():
                memory[name].append(value)
            threads = pair["gateway"].get("gateway_threads_cpu_s")
            if threads and sum(threads.values()) > 0:
                loop_share[0].append(threads["event_loop"] / sum(threads.values()))
        over = _spreads(overhead)
        met = bool(over) and all(over[q]["median"] <= limit for q, limit in TARGET_MS.items())
        every = bool(over) and all(over[q]["max"] <= limit for q, limit in TARGET_MS.items())
        rows.append(
            {
                "profile": profile,
                "mode": mode,
                "repetitions": len(overhead["p50"]),
                "direct_ms": _spreads(direct),
                "gateway_ms": _spreads(gateway),
                "overhead_ms": over,
                "ttfb_overhead_ms": _spreads(ttfb_overhead) or None,
                "cpu_s_per_1k": _spreads(cpu),
                "cpu_s_per_1k_during_direct": _spreads(cpu_direct),
                "gateway_memory_mb": _spreads(memory),
                "gateway_event_loop_cpu_share": spread(loop_share[0]) if loop_share[0] else None,
                "errors": {k: dict(v) for k, v in errors.items()},
                "target": {
                    **{f"{q}_ms": v for q, v in TARGET_MS.items()},
                    "met": met,
                    "met_every_run": every,
                },
            }
        )
    return rows


def _cell(s: dict[str, float] | None, *, ranged: bool = False, digits: int = 2) -> str:
    if not s:
        return "-"
    text = f"{s['median']:.{digits}f}"
    if ranged and s["max"] > s["min"]:
        text += f" ({s['min']:.{digits}f}..{s['max']:.{digits}f})"
    return text


def _triple(s: dict[str, dict[str, float]], *, ranged: bool = False) -> str:
    return " / ".join(_cell(s.get(q), ranged=ranged) for q in QUANTILES)


def _errors(row: dict[str, Any]) -> str:
    parts = [f"{t} {k}: {n}" for t, e in row["errors"].items() for k, n in e.items()]
    return ", ".join(parts) or "none"


def _columns() -> list[str]:
    return [
        "profile",
        "mode",
        "direct p50 / p90 / p99 ms",
        "gateway p50 / p90 / p99 ms",
        "overhead p50 / p90 / p99 ms",
        "gateway CPU s / 1k req",
        "sim CPU s / 1k",
        "load gen CPU s / 1k",
        "gateway RSS MB",
        "errors",
        "target met",
    ]


def _cells(row: dict[str, Any]) -> list[str]:
    cpu = row["cpu_s_per_1k"]
    target = row["target"]
    met = "yes" if target["met"] else "no"
    if target["met"] and not target["met_every_run"]:
        met = "median only"
    return [
        row["profile"],
        row["mode"],
        _triple(row["direct_ms"]),
        _triple(row["gateway_ms"]),
        _triple(row["overhead_ms"], ranged=True),
        _cell(cpu.get("gateway"), ranged=True, digits=3),
        _cell(cpu.get("sim"), digits=3),
        _cell(cpu.get("load"), digits=3),
        _cell(row["gateway_memory_mb"].get("peak_rss"), digits=0),
        _errors(row),
        met,
    ]


def print_table(data: dict[str, Any]) -> None:
    settings = data["settings"]
    table = Table(
        *_columns(), title=f"Gateway overhead at {settings['rate']:g} req/s (medians; overhead range)"
    )
    for row in data["summary"]:
        table.add_row(*_cells(row))
    Console(width=220).print(table)


def markdown(data: dict[str, Any]) -> str:
    s, m = data["settings"], data["machine"]
    lines = [
        f"Run {data['date']} with `{data['command']}`",
        f"on {m['cores']} cores ({m['cpu']}), Python {m['python']}, load average at start "
        f"{', '.join(str(x) for x in m['load_average'])}.",
        f"{s['rate']:g} req/s open loop, {s['duration']:g} s measured after {s['warmup']:g} s warm-up, "
        f"{s['message_chars']}-character prompt, {s['output_tokens']}-token reply, simulator "
        + ("instant" if s["upstream_ms"] <= 0 else f"answering after {s['upstream_ms']:g} ms")
        + f"; {s['repeat']} repetition(s): medians, overhead as median (min..max).",
        "",
        "| " + " | ".join(_columns()) + " |",
        "|" + "---|" * len(_columns()),
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in data["summary"]]
    for profile, modes in data.get("py_spy", {}).items():
        for mode, profiled in modes.items():
            summary = profiled["summary"]
            lines += ["", f"py-spy, {profile} {mode} ({summary['samples']} busy samples): share by area", ""]
            lines += ["| area | % of busy samples |", "|---|---|"]
            lines += [f"| {a['frame']} | {a['percent']} |" for a in summary["areas"]]
    return "\n".join(lines) + "\n"
