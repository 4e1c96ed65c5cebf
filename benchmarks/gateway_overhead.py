"""The gateway's own cost: the same open-loop load sent to the simulator directly and through the gateway.

    .venv/bin/python benchmarks/gateway_overhead.py                   # 200 req/s, 30 s per run
    .venv/bin/python benchmarks/gateway_overhead.py --repeat 2 --py-spy
    .venv/bin/python benchmarks/gateway_overhead.py --profiles passthrough --telemetry on,off --repeat 2

The simulator runs as its own process (SimProcess) and the gateway as one or more others (`fleetplane up
DIR`, benchmarks/servers.py), its Providers pointing at that same simulator. For every profile and mode
(plain, stream) the load runs once straight at the simulator and once through the gateway (round-robin over
its replicas); the overhead is gateway latency minus direct latency at each percentile. CPU-seconds per
1,000 requests of the gateway replicas (summed), the simulator, this load generator and, for shared state,
the Redis server come from /proc/PID/stat and Redis' INFO cpu over the measured window (the warm-up
excluded). Results: a table here, JSON and a markdown snippet under benchmarks/results/.

`--telemetry on,off` runs every profile twice side by side: one set of gateways with telemetry (spans,
metrics, the span store: the default of `fleetplane up`) and one without (`FLEETPLANE_TELEMETRY=false`),
both up at once, the direct run and the two gateway runs interleaved within each repetition.

A profile is a fleet variant (benchmarks/fleets.py), a topology (replicas, in-process or Redis state,
SQLite or Postgres ledger) and its target: adding one is one entry in PROFILES.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fleets
import pyspy
from common import (
    CpuWindow,
    command_line,
    machine,
    memory_mb,
    now_utc,
    process_meter,
    result_path,
    source,
    thread_cpu_seconds,
    write_result,
)
from overhead_report import TELEMETRY_OFF, TELEMETRY_TARGET, Target, markdown, print_table, summarize
from servers import Gateways, Topology

from fleetplane.sim.load import LoadSpec, Phase, run
from fleetplane.sim.process import SimProcess

MODEL = "bench-chat"
MODES: dict[str, bool] = {"plain": False, "stream": True}
# `fleetplane up`'s telemetry switch (--telemetry/--no-telemetry) per --telemetry setting.
TELEMETRY: dict[str, str] = {"on": "true", "off": "false"}


@dataclass(frozen=True)
class Profile:
    id: str  # for --profiles
    name: str  # in tables
    description: str
    fleet: fleets.FleetVariant
    target: Target
    topology: Topology = field(default_factory=Topology)
    env: Mapping[str, str] = field(default_factory=dict)  # more environment for `fleetplane up`


LAYERS_ON_REDIS = Target(added_p50_rtt=1.5, text="admission adds about one Redis round trip (<= 1.5) at p50")
PROFILES = [
    Profile(
        "passthrough",
        "passthrough",
        "the example gateway as it is: in-process state, no cache, one replica, usage ledger on SQLite",
        fleets.passthrough,
        Target(p50_ms=1.0, p99_ms=5.0, text="overhead p50 <= 1 ms, p99 <= 5 ms"),
    ),
    Profile(
        "layers",
        "L1+L2+L3 in-process",
        "4 quotas (team, each agent, model, key: 10 limits), an agent breaker (repeats, cost velocity, "
        "context growth), a deployment breaker (error rate), a 2-step fallback chain; in-process state, "
        "one replica, ledger on SQLite",
        fleets.layered,
        Target(added_p50_ms=0.3, p99_ms=5.0, text="p50 <= passthrough + 0.3 ms, overhead p99 <= 5 ms"),
    ),
    Profile(
        "layers-redis",
        "L1+L2+L3 on Redis",
        "the same fleet with quotas, breakers and cooldowns on Redis; one replica, ledger on SQLite (only "
        "the state moves, compared with in-process)",
        fleets.layered,
        LAYERS_ON_REDIS,
        Topology(replicas=1, shared_state="redis", database="sqlite"),
    ),
    Profile(
        "layers-redis-3",
        "L1+L2+L3 on Redis, 3 replicas",
        "the same fleet, 3 replicas sharing Redis and one Postgres ledger, load round-robin over them",
        fleets.layered,
        LAYERS_ON_REDIS,
        Topology(replicas=3, shared_state="redis", database="postgres"),
    ),
]


@dataclass(frozen=True)
class Settings:
    rate: float
    duration: float
    warmup: float
    upstream_ms: float
    message_chars: int
    output_tokens: int
    repeat: int
    modes: list[str]
    profiles: list[str]
    py_spy: bool
    telemetry: list[str]


def sim_config(upstream_ms: float) -> dict[str, Any]:
    """One model, instant or answering after a fixed time (a lognormal whose p95 is its median)."""
    if upstream_ms <= 0:
        return {"seed": 1, "instant": True, "models": {MODEL: {}}}
    model = {"ttft_ms": {"median": upstream_ms, "p95": upstream_ms}, "tps": {"mean": 0, "jitter": 0}}
    return {"seed": 1, "models": {MODEL: model}}


def load_spec(settings: Settings, urls: list[str], *, stream: bool, key: str | None) -> LoadSpec:
    return LoadSpec(
        url=urls[0],
        more_urls=tuple(urls[1:]),
        rate=settings.rate,
        duration=settings.duration,
        warmup=settings.warmup,
        model=MODEL,
        stream=stream,
        message_chars=settings.message_chars,
        directives=(f"output_tokens={settings.output_tokens}",),
        api_key=key,
        # Every body differs, as an agent's do: a repeat breaker then watches real traffic (and never
        # sees a 6th identical request), the same for the direct and the gateway runs of every profile.
        unique=True,
        timeout=30.0,
    )


def measure(spec: LoadSpec, gateways: Gateways, sim_pid: int | None) -> dict[str, Any]:
    """One load run; CPU over its measured window, as seconds and per 1,000 requests: each replica
    (`gateway-N`) and their sum (`gateway`), the simulator, this load generator, the Redis server."""
    meters = gateways.cpu_meters()
    if sim_pid is not None:
        meters["sim"] = process_meter(sim_pid)
    meters["load"] = process_meter(None)
    window = CpuWindow(meters)
    redis = gateways.redis
    calls: list[dict[str, int]] = []
    threads: list[dict[int, dict[int, float]]] = []

    def on_phase(phase: Phase) -> None:
        if phase == "measure":
            window.open()
        elif phase == "done":
            window.close()
        if phase in ("measure", "done"):
            threads.append({r.pid: thread_cpu_seconds(r.pid) for r in gateways.replicas})
            if redis is not None:
                calls.append(redis.command_calls())

    loads: list[float] = []

    def on_phase_and_load(phase: Phase) -> None:
        if phase in ("measure", "done"):
            loads.append(os.getloadavg()[0])  # the machine is shared: what else was running
        on_phase(phase)

    result = run(spec, on_phase=on_phase_and_load)
    used = dict(window.used)
    used["gateway"] = sum(v for k, v in used.items() if k.startswith("gateway-"))
    per_1k = {name: value / result.requests * 1000 for name, value in used.items()}
    data: dict[str, Any] = {"result": result.to_json(), "cpu_s": used, "cpu_s_per_1k": per_1k}
    data["load_average_1m"] = loads  # at the start and at the end of the measured window
    if len(threads) == 2:
        # Which of the gateways' threads did the work: the event loops, or helpers such as aiosqlite's.
        loop = other = 0.0
        for pid, after in threads[1].items():
            before = threads[0].get(pid, {})
            for tid, seconds in after.items():
                if tid == pid:
                    loop += seconds - before.get(tid, 0.0)
                else:
                    other += seconds - before.get(tid, 0.0)
        data["gateway_threads_cpu_s"] = {"event_loop": loop, "other_threads": other}
    if len(calls) == 2:
        # Redis commands per request, by command (INFO commandstats of our own server).
        diff = {k: v - calls[0].get(k, 0) for k, v in calls[1].items() if v > calls[0].get(k, 0)}
        data["redis_calls_per_request"] = {k: v / result.requests for k, v in sorted(diff.items())}
    return data


def _line(label: str, run_data: dict[str, Any]) -> str:
    result = run_data["result"]
    latency = result["latency_ms"] or {}
    errors = ", ".join(f"{k}: {v}" for k, v in result["errors"].items()) or "no errors"
    p = " / ".join(f"{latency.get(q, float('nan')):.2f}" for q in ("p50", "p90", "p99"))
    return f"  {label:<34} {result['ok']:>6} ok, {errors}; p50/p90/p99 {p} ms"


def variant_name(profile: Profile, telemetry: str) -> str:
    return profile.name + (TELEMETRY_OFF if telemetry == "off" else "")


def run_profile(
    settings: Settings, profile: Profile, sim: SimProcess, workdir: Path, logs: Path
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    profiled: dict[str, Any] = {}
    saved: list[Path] = []
    params = fleets.FleetParams(upstream_url=sim.base_url + "/v1", model=MODEL)
    with contextlib.ExitStack() as stack:
        # One set of gateways per telemetry setting, all up at once so their runs can interleave (an idle
        # set costs next to nothing: config and key polling).
        sets: dict[str, Gateways] = {}
        for telemetry in settings.telemetry:
            env = {**profile.env, "FLEETPLANE_TELEMETRY": TELEMETRY[telemetry]}
            home = workdir / f"telemetry-{telemetry}"
            home.mkdir()
            sets[telemetry] = stack.enter_context(
                Gateways(profile.fleet, params, profile.topology, home, env=env)
            )
        rtts: dict[str, dict[str, float]] = {}
        for telemetry, gateways in sets.items():
            if gateways.redis is not None:
                rtts[telemetry] = rtt = gateways.redis.round_trip_ms()
                name = variant_name(profile, telemetry)
                print(f"  {name}: Redis PING round trip p50 {rtt['p50']:.3f} ms, p99 {rtt['p99']:.3f} ms")
        names = [variant_name(profile, t) for t in sets]
        for rep in range(settings.repeat):
            for mode in settings.modes:
                targets: list[tuple[str, str | None]] = [("direct", None)] + [("gateway", t) for t in sets]
                # Alternate which target goes first, so a drift of the machine does not favour one.
                for target, setting in targets if rep % 2 == 0 else targets[::-1]:
                    if setting is None:
                        urls, key, gateways = [sim.base_url + "/v1"], None, next(iter(sets.values()))
                    else:
                        gateways = sets[setting]
                        urls, key = gateways.urls, gateways.key
                    spec = load_spec(settings, urls, stream=MODES[mode], key=key)
                    data = measure(spec, gateways, sim.pid)
                    data.update(mode=mode, target=target, repetition=rep + 1)
                    if setting is not None:
                        data["profile"] = variant_name(profile, setting)
                        data["telemetry"] = setting
                        if setting in rtts:
                            data["redis_rtt_ms"] = rtts[setting]
                        # Per replica: the largest.
                        memory = [memory_mb(r.pid) for r in gateways.replicas]
                        data["gateway_memory_mb"] = {k: max(m[k] for m in memory) for k in memory[0]}
                        runs.append(data)
                        print(_line(f"{data['profile']} {mode} {target} (run {rep + 1})", data), flush=True)
                    else:
                        # One direct run serves every telemetry setting of this repetition.
                        for name in names:
                            runs.append({**data, "profile": name})
                        print(_line(f"{profile.name} {mode} {target} (run {rep + 1})", data), flush=True)
        if settings.py_spy:
            for telemetry, gateways in sets.items():
                name = variant_name(profile, telemetry)
                for mode in settings.modes:
                    profiled.setdefault(name, {})[mode] = _profile_run(
                        settings, name, gateways, mode, workdir
                    )
        for telemetry, gateways in sets.items():
            saved += gateways.save_logs(logs.with_name(f"{logs.name}-telemetry-{telemetry}"))
    return {"runs": runs, "py_spy": profiled, "gateway_logs": [str(p) for p in saved]}


def _profile_run(
    settings: Settings, name: str, gateways: Gateways, mode: str, workdir: Path
) -> dict[str, Any]:
    """One more gateway run with py-spy sampling replica 1 (with several, it takes 1/n of the load); its
    latencies are not used (sampling perturbs them)."""
    output = workdir / f"py-spy-{len(list(workdir.glob('py-spy-*')))}-{mode}.txt"
    sampler = pyspy.record(gateways.replicas[0].pid, settings.warmup + settings.duration, output)
    spec = load_spec(settings, gateways.urls, stream=MODES[mode], key=gateways.key)
    data = measure(spec, gateways, None)
    _, err = sampler.communicate()
    if sampler.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    print(_line(f"{name} {mode} gateway (py-spy)", data), flush=True)
    text = output.read_text()
    return {"run": data, "summary": pyspy.summarize(text), "raw": text}


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds per run (default 30)")
    p.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds per run (default 5)")
    p.add_argument("--upstream-ms", type=float, default=0.0, help="simulator answer time; 0 = instant")
    p.add_argument("--message-chars", type=int, default=1000, help="user message length (default 1000)")
    p.add_argument("--output-tokens", type=int, default=100, help="reply length in tokens (default 100)")
    p.add_argument("--repeat", type=int, default=1, help="repetitions of every run (default 1)")
    p.add_argument("--modes", default="plain,stream", help="comma-separated: plain, stream")
    ids = ",".join(x.id for x in PROFILES)
    p.add_argument("--profiles", default=ids, help=f"comma-separated profile ids (default {ids})")
    p.add_argument("--py-spy", action="store_true", help="also profile the gateway with py-spy, per mode")
    p.add_argument(
        "--telemetry",
        default="on",
        help="comma-separated: on (spans, metrics, span store; the default), "
        "off (FLEETPLANE_TELEMETRY=false); "
        "on,off measures both side by side",
    )
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    telemetry = list(dict.fromkeys(t for t in args.telemetry.split(",") if t))
    profiles = [n for n in args.profiles.split(",") if n]
    unknown = [m for m in modes if m not in MODES] + [
        n for n in profiles if n not in {x.id for x in PROFILES}
    ]
    unknown += [t for t in telemetry if t not in TELEMETRY]
    if unknown or args.repeat < 1 or not telemetry:
        p.error(
            f"unknown modes/profiles/telemetry {unknown}" if unknown else "--repeat and --telemetry needed"
        )
    if args.py_spy and pyspy.available() is None:
        p.error("--py-spy needs py-spy: .venv/bin/pip install py-spy")
    return Settings(
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        upstream_ms=args.upstream_ms,
        message_chars=args.message_chars,
        output_tokens=args.output_tokens,
        repeat=args.repeat,
        modes=modes,
        profiles=profiles,
        py_spy=args.py_spy,
        telemetry=telemetry,
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    started = now_utc()
    data: dict[str, Any] = {
        "benchmark": "gateway_overhead",
        "date": started.isoformat(timespec="seconds"),
        "command": command_line(),
        "machine": machine(),
        "source": source(),
        "settings": settings.__dict__,
        "profiles": {
            variant_name(p, t): {
                "description": p.description + ("" if t == "on" else "; telemetry off"),
                "topology": p.topology.describe(),
                "target": p.target.text if t == "on" else TELEMETRY_TARGET.text,
            }
            for p in PROFILES
            if p.id in settings.profiles
            for t in settings.telemetry
        },
        "runs": [],
        "py_spy": {},
    }
    with SimProcess(sim_config(settings.upstream_ms)) as sim:
        for profile in (p for p in PROFILES if p.id in settings.profiles):
            with tempfile.TemporaryDirectory(prefix=f"fleetplane-bench-{profile.id}-") as tmp:
                logs = result_path(f"gateway_overhead-{profile.id}", started, "log").with_suffix("")
                out = run_profile(settings, profile, sim, Path(tmp), logs)
            data["runs"] += out["runs"]
            if out["gateway_logs"]:
                data.setdefault("gateway_logs", {})[profile.name] = out["gateway_logs"]
            if out["py_spy"]:
                data["py_spy"].update(out["py_spy"])  # by variant (profile, telemetry) and mode
    targets = {p.name: p.target for p in PROFILES}
    targets |= {variant_name(p, "off"): TELEMETRY_TARGET for p in PROFILES}
    data["summary"] = summarize(data["runs"], targets)
    ids = {
        variant_name(p, t): p.id + ("" if t == "on" else "-telemetry-off")
        for p in PROFILES
        for t in TELEMETRY
    }
    for profile_name, modes in data["py_spy"].items():
        for mode, profiled in modes.items():
            raw = result_path(f"gateway_overhead-{ids[profile_name]}-{mode}-py-spy", started, "txt")
            raw.write_text(profiled.pop("raw"))
            profiled["raw_file"] = str(raw)
    path = write_result("gateway_overhead", data, started)
    snippet = markdown(data)
    path.with_suffix(".md").write_text(snippet)
    print_table(data)
    print(f"\nJSON: {path}\nmarkdown: {path.with_suffix('.md')}\n")
    print(snippet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
