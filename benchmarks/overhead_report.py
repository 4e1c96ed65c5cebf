"""Turning the gateway overhead runs into numbers: overhead per percentile, CPU per 1,000 requests, the
spread over repetitions, what each profile adds over `passthrough`, what telemetry costs (a profile with
telemetry on against the same profile with it off, paired run by run), whether its target is met, a rich
table and a markdown snippet for docs/benchmarks.md.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from common import spread
from rich.console import Console
from rich.table import Table

QUANTILES = ("p50", "p90", "p99")
BASELINE = "passthrough"  # what "added" is measured against: the same mode, the same invocation
TELEMETRY_OFF = " (telemetry off)"  # a profile's name with this suffix: the same profile, telemetry off


@dataclass(frozen=True)
class Target:
    """What a profile must show; a bound left as None is not part of its target. Judged on medians."""

    text: str
    p50_ms: float | None = None  # overhead p50 at most
    p99_ms: float | None = None  # overhead p99 at most
    added_p50_ms: float | None = None  # overhead p50 above passthrough's at most
    added_p50_rtt: float | None = None  # the same, in Redis round trips (PING p50 of the profile's Redis)
    # On a "telemetry off" profile: what turning telemetry on costs, at most (gateway CPU per request as a
    # ratio on / off, and p50 latency in ms), judged on the median of the run-by-run pairs.
    telemetry_cpu_ratio: float | None = None
    telemetry_p50_ms: float | None = None


TELEMETRY_TARGET = Target(
    text="telemetry on adds <= 10% gateway CPU per request and <= 0.2 ms p50",
    telemetry_cpu_ratio=1.10,
    telemetry_p50_ms=0.2,
)


def _spreads(values: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {key: spread(v) for key, v in values.items() if v}


def _row(profile: str, mode: str, reps: Mapping[int, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Medians and min/max over the repetitions of one profile and mode."""
    direct: dict[str, list[float]] = defaultdict(list)
    gateway: dict[str, list[float]] = defaultdict(list)
    overhead: dict[str, list[float]] = defaultdict(list)
    ttfb_overhead: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    cpu_direct: dict[str, list[float]] = defaultdict(list)
    memory: dict[str, list[float]] = defaultdict(list)
    redis_calls: dict[str, list[float]] = defaultdict(list)
    redis_rtt: list[float] = []
    loop_share: list[float] = []
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
        for name, value in pair["gateway"].get("redis_calls_per_request", {}).items():
            redis_calls[name].append(value)
        if "redis_rtt_ms" in pair["gateway"]:
            redis_rtt.append(pair["gateway"]["redis_rtt_ms"]["p50"])
        threads = pair["gateway"].get("gateway_threads_cpu_s")
        if threads and sum(threads.values()) > 0:
            loop_share.append(threads["event_loop"] / sum(threads.values()))
    return {
        "profile": profile,
        "mode": mode,
        "repetitions": len(overhead["p50"]),
        "direct_ms": _spreads(direct),
        "gateway_ms": _spreads(gateway),
        "overhead_ms": _spreads(overhead),
        "ttfb_overhead_ms": _spreads(ttfb_overhead) or None,
        "cpu_s_per_1k": _spreads(cpu),
        "cpu_s_per_1k_during_direct": _spreads(cpu_direct),
        "gateway_memory_mb": _spreads(memory),
        "gateway_event_loop_cpu_share": spread(loop_share) if loop_share else None,
        "redis_rtt_ms": spread(redis_rtt) if redis_rtt else None,
        "redis_calls_per_request": {k: spread(v)["median"] for k, v in sorted(redis_calls.items())},
        "errors": {k: dict(v) for k, v in errors.items()},
    }


def _judge(row: dict[str, Any], target: Target | None, baseline: dict[str, Any] | None) -> dict[str, Any]:
    """What the profile adds over passthrough (difference of medians) and whether each bound holds."""
    over = row["overhead_ms"]
    added: dict[str, float] | None = None
    if baseline is not None and baseline is not row and over and baseline["overhead_ms"]:
        added = {
            "p50_ms": over["p50"]["median"] - baseline["overhead_ms"]["p50"]["median"],
            "p99_ms": over["p99"]["median"] - baseline["overhead_ms"]["p99"]["median"],
            "cpu_ms_per_request": row["cpu_s_per_1k"]["gateway"]["median"]
            - baseline["cpu_s_per_1k"]["gateway"]["median"],
        }
        if row["redis_rtt_ms"]:
            added["p50_rtt"] = added["p50_ms"] / row["redis_rtt_ms"]["median"]
    checks: dict[str, bool | None] = {}
    if target is not None and over:
        if target.p50_ms is not None:
            checks["p50"] = over["p50"]["median"] <= target.p50_ms
        if target.p99_ms is not None:
            checks["p99"] = over["p99"]["median"] <= target.p99_ms
        if target.added_p50_ms is not None:
            checks["added_p50"] = None if added is None else added["p50_ms"] <= target.added_p50_ms
        if target.added_p50_rtt is not None:
            checks["added_p50_rtt"] = (
                None if added is None or "p50_rtt" not in added else added["p50_rtt"] <= target.added_p50_rtt
            )
    # Every run, for the bounds on the profile's own overhead (the added ones are differences of medians).
    every = bool(over) and all(
        over[q]["max"] <= bound
        for q, bound in (
            ("p50", target.p50_ms if target else None),
            ("p99", target.p99_ms if target else None),
        )
        if bound is not None
    )
    known = [v for v in checks.values() if v is not None]
    return {
        "added_over_passthrough": added,
        "target": {
            "text": target.text if target else None,
            "checks": checks,
            # None: a bound could not be judged (no passthrough run in this invocation).
            "met": None if len(known) < len(checks) or not checks else all(known),
            "met_every_run": every,
        },
    }


Reps = Mapping[int, dict[str, dict[str, Any]]]


def _telemetry_cost(on: Reps, off: Reps) -> dict[str, dict[str, float]] | None:
    """Telemetry on minus off, per repetition (both gateway runs of a repetition ran next to each other,
    against the same direct run), then their spread: p50/p99 latency in ms, gateway CPU ms per request,
    and that CPU as a ratio on / off."""
    cost: dict[str, list[float]] = defaultdict(list)
    for rep, pair in off.items():
        g_off, g_on = pair.get("gateway"), on.get(rep, {}).get("gateway")
        if g_off is None or g_on is None:
            continue
        lat_on, lat_off = g_on["result"]["latency_ms"], g_off["result"]["latency_ms"]
        if lat_on and lat_off:
            cost["p50_ms"].append(lat_on["p50"] - lat_off["p50"])
            cost["p99_ms"].append(lat_on["p99"] - lat_off["p99"])
        cpu_on, cpu_off = g_on["cpu_s_per_1k"]["gateway"], g_off["cpu_s_per_1k"]["gateway"]
        cost["cpu_ms_per_request"].append(cpu_on - cpu_off)
        if cpu_off > 0:
            cost["cpu_ratio"].append(cpu_on / cpu_off)
    return _spreads(cost) or None


def _judge_telemetry(row: dict[str, Any], target: Target | None) -> None:
    cost = row.get("telemetry_cost")
    if target is None or target.telemetry_cpu_ratio is None:
        return
    checks: dict[str, bool | None] = {"telemetry_cpu": None, "telemetry_p50": None}
    every = False
    if cost and "cpu_ratio" in cost and "p50_ms" in cost:
        checks["telemetry_cpu"] = cost["cpu_ratio"]["median"] <= target.telemetry_cpu_ratio
        checks["telemetry_p50"] = cost["p50_ms"]["median"] <= (target.telemetry_p50_ms or 0.0)
        every = cost["cpu_ratio"]["max"] <= target.telemetry_cpu_ratio and cost["p50_ms"]["max"] <= (
            target.telemetry_p50_ms or 0.0
        )
    known = [v for v in checks.values() if v is not None]
    row["target"] = {
        "text": target.text,
        "checks": checks,
        "met": None if len(known) < len(checks) else all(known),
        "met_every_run": every,
    }


def summarize(runs: Sequence[dict[str, Any]], targets: Mapping[str, Target]) -> list[dict[str, Any]]:
    """One row per (profile, mode), in the order the runs came."""
    grouped: dict[tuple[str, str], dict[int, dict[str, dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for run in runs:
        grouped[run["profile"], run["mode"]][run["repetition"]][run["target"]] = run
    rows = [_row(profile, mode, reps) for (profile, mode), reps in grouped.items()]
    baselines = {row["mode"]: row for row in rows if row["profile"] == BASELINE}
    for row in rows:
        row.update(_judge(row, targets.get(row["profile"]), baselines.get(row["mode"])))
        loads = [
            x
            for reps in grouped[row["profile"], row["mode"]].values()
            for r in reps.values()
            for x in r.get("load_average_1m", [])
        ]
        row["load_average_1m"] = spread(loads) if loads else None
        if row["profile"].endswith(TELEMETRY_OFF):
            on = grouped.get((row["profile"].removesuffix(TELEMETRY_OFF), row["mode"]))
            row["telemetry_cost"] = _telemetry_cost(on, grouped[row["profile"], row["mode"]]) if on else None
            _judge_telemetry(row, targets.get(row["profile"]))
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


def _added(row: dict[str, Any]) -> str:
    added = row["added_over_passthrough"]
    if not added:
        return "-"
    text = f"{added['p50_ms']:+.2f} ms p50, {added['cpu_ms_per_request']:+.3f} ms CPU"
    if "p50_rtt" in added:
        text += f" ({added['p50_rtt']:.1f} RTT)"
    return text


def _telemetry(row: dict[str, Any]) -> str:
    cost = row.get("telemetry_cost")
    if not cost:
        return "-"
    parts = []
    if "cpu_ratio" in cost:
        c = cost["cpu_ratio"]
        parts.append(f"CPU x{c['median']:.3f} ({c['min']:.3f}..{c['max']:.3f})")
    if "p50_ms" in cost:
        c = cost["p50_ms"]
        parts.append(f"p50 {c['median']:+.2f} ms ({c['min']:+.2f}..{c['max']:+.2f})")
    return ", ".join(parts)


def _met(row: dict[str, Any]) -> str:
    target = row["target"]
    if target["met"] is None:
        if not target["checks"]:
            return "not judged"
        return "needs the telemetry-on run" if "telemetry_cpu" in target["checks"] else "needs passthrough"
    if not target["met"]:
        failed = [k for k, v in target["checks"].items() if v is False]
        return "no (" + ", ".join(failed) + ")"
    return "yes" if target["met_every_run"] else "median only"


def _columns() -> list[str]:
    return [
        "profile",
        "mode",
        "direct p50 / p90 / p99 ms",
        "gateway p50 / p90 / p99 ms",
        "overhead p50 / p90 / p99 ms",
        "added over passthrough",
        "telemetry on vs off (paired runs)",
        "gateway CPU s / 1k req (all replicas)",
        "Redis CPU s / 1k",
        "Redis calls / req",
        "sim CPU s / 1k",
        "load gen CPU s / 1k",
        "gateway RSS MB (per replica)",
        "load avg 1 min",
        "errors",
        "target met",
    ]


def _cells(row: dict[str, Any]) -> list[str]:
    cpu = row["cpu_s_per_1k"]
    calls = row["redis_calls_per_request"]
    return [
        row["profile"],
        row["mode"],
        _triple(row["direct_ms"]),
        _triple(row["gateway_ms"]),
        _triple(row["overhead_ms"], ranged=True),
        _added(row),
        _telemetry(row),
        _cell(cpu.get("gateway"), ranged=True, digits=3),
        _cell(cpu.get("redis"), ranged=True, digits=3),
        f"{sum(calls.values()):.1f}" if calls else "-",
        _cell(cpu.get("sim"), digits=3),
        _cell(cpu.get("load"), digits=3),
        _cell(row["gateway_memory_mb"].get("peak_rss"), digits=0),
        _cell(row.get("load_average_1m"), ranged=True, digits=1),
        _errors(row),
        _met(row),
    ]


def print_table(data: dict[str, Any]) -> None:
    settings = data["settings"]
    table = Table(
        *_columns(), title=f"Gateway overhead at {settings['rate']:g} req/s (medians; overhead range)"
    )
    for row in data["summary"]:
        table.add_row(*_cells(row))
    Console(width=260).print(table)


def markdown(data: dict[str, Any]) -> str:
    s, m = data["settings"], data["machine"]
    lines = [
        f"Run {data['date']} with `{data['command']}`",
        f"on {m['cores']} cores ({m['cpu']}), Python {m['python']}, load average at start "
        f"{', '.join(str(x) for x in m['load_average'])}; fleetplane at {data['source'].get('commit', '?')}.",
        f"{s['rate']:g} req/s open loop, {s['duration']:g} s measured after {s['warmup']:g} s warm-up, "
        f"{s['message_chars']}-character prompt, {s['output_tokens']}-token reply, simulator "
        + ("instant" if s["upstream_ms"] <= 0 else f"answering after {s['upstream_ms']:g} ms")
        + f"; {s['repeat']} repetition(s): medians, overhead as median (min..max).",
        "",
        "| " + " | ".join(_columns()) + " |",
        "|" + "---|" * len(_columns()),
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in data["summary"]]
    calls = [row for row in data["summary"] if row["redis_calls_per_request"]]
    if calls:
        lines += ["", "Redis commands per request (INFO commandstats of the profile's own Redis server):", ""]
        for row in calls:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in row["redis_calls_per_request"].items())
            rtt = row["redis_rtt_ms"]
            ping = f"; PING round trip p50 {rtt['median']:.3f} ms" if rtt else ""
            lines.append(f"- {row['profile']} {row['mode']}: {parts}{ping}")
    for profile, modes in data.get("py_spy", {}).items():
        for mode, profiled in modes.items():
            summary = profiled["summary"]
            lines += ["", f"py-spy, {profile} {mode} ({summary['samples']} busy samples): share by area", ""]
            lines += ["| area | % of busy samples |", "|---|---|"]
            lines += [f"| {a['frame']} | {a['percent']} |" for a in summary["areas"]]
            lines += ["", "Steps of a request, inclusive of what they call:", ""]
            lines += ["| step | % of busy samples |", "|---|---|"]
            lines += [f"| {a['frame']} | {a['percent']} |" for a in summary.get("steps", [])]
            lines += ["", "fleetplane's own functions, inclusive of what they call:", ""]
            lines += ["| function | % |", "|---|---|"]
            lines += [f"| `{f['frame']}` | {f['percent']} |" for f in summary["fleetplane_inclusive"][:20]]
    return "\n".join(lines) + "\n"
