"""The gateway's own cost: the same open-loop load sent to the simulator directly and through the gateway.

    .venv/bin/python benchmarks/gateway_overhead.py                   # 200 req/s, 30 s per run
    .venv/bin/python benchmarks/gateway_overhead.py --repeat 2 --py-spy

The simulator runs as its own process (SimProcess) and the gateway as another (`fleetplane up DIR`, on a
fresh SQLite file in a temp directory), its Provider pointing at that same simulator. For every profile and
mode (plain, stream) the load runs once straight at the simulator and once through the gateway; the
overhead is gateway latency minus direct latency at each percentile. CPU-seconds per 1,000 requests of the
gateway, the simulator and this load generator come from /proc/PID/stat over the measured window (the
warm-up excluded). Results: a table here, JSON and a markdown snippet under benchmarks/results/.

A profile is a fleet variant (benchmarks/fleets.py) plus the gateway's environment: adding one (all layers
in-process, layers on Redis, telemetry on or off) is one entry in PROFILES.
"""

from __future__ import annotations

import argparse
import secrets
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
    free_port,
    machine,
    memory_mb,
    now_utc,
    post_json,
    result_path,
    source,
    spawn,
    stop,
    thread_cpu_seconds,
    wait_http,
    write_result,
)
from overhead_report import markdown, print_table, summarize

from fleetplane.sim.load import LoadSpec, Phase, run
from fleetplane.sim.process import SimProcess

MODEL = "bench-chat"
MODES: dict[str, bool] = {"plain": False, "stream": True}


# How the gateway process is started: `fleetplane up` exactly as a user runs it ...
FLEETPLANE = (sys.executable, "-m", "fleetplane.cli")
# ... or the same command with uvloop's event-loop policy installed first. `fleetplane up` runs uvicorn
# inside its own asyncio.run(), so uvicorn's loop="uvloop" setting does not apply; this launcher shows what
# the gateway measures on the loop its config asks for, without changing gateway code.
FLEETPLANE_ON_UVLOOP = (
    sys.executable,
    "-c",
    "import asyncio, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "sys.argv[0] = 'fleetplane'; from fleetplane.cli import main; main()",
)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    fleet: fleets.FleetVariant
    env: Mapping[str, str] = field(default_factory=dict)  # e.g. FLEETPLANE_REDIS_URL for shared state
    launcher: tuple[str, ...] = FLEETPLANE


PROFILES = [
    Profile(
        "passthrough",
        "the example gateway as it is: in-process state, no cache, one replica, usage ledger on SQLite",
        fleets.passthrough,
    ),
    Profile(
        "passthrough-uvloop",
        "passthrough with the gateway process on uvloop, the loop its uvicorn config asks for (diagnostic)",
        fleets.passthrough,
        launcher=FLEETPLANE_ON_UVLOOP,
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


def sim_config(upstream_ms: float) -> dict[str, Any]:
    """One model, instant or answering after a fixed time (a lognormal whose p95 is its median)."""
    if upstream_ms <= 0:
        return {"seed": 1, "instant": True, "models": {MODEL: {}}}
    model = {"ttft_ms": {"median": upstream_ms, "p95": upstream_ms}, "tps": {"mean": 0, "jitter": 0}}
    return {"seed": 1, "models": {MODEL: model}}


class Gateway:
    """`fleetplane up` on a profile's fleet, in its own process, with its own store in a temp directory."""

    def __init__(self, profile: Profile, upstream_url: str, workdir: Path) -> None:
        self.profile = profile
        self.upstream_url = upstream_url
        self.workdir = workdir
        self.key = "sk-bench-" + secrets.token_hex(16)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = workdir / "gateway.log"
        self._proc: Any = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return int(self._proc.pid)

    def __enter__(self) -> Gateway:
        fleet_dir = self.workdir / "fleet"
        self.profile.fleet(fleets.FleetParams(upstream_url=self.upstream_url, model=MODEL), fleet_dir)
        home = self.workdir / "home"
        home.mkdir()
        env = {
            "FLEETPLANE_HOME": str(home),
            "FLEETPLANE_DATABASE_URL": f"sqlite:///{home / 'fleetplane.db'}",
            fleets.KEY_ENV: self.key,
            **self.profile.env,
        }
        args = [*self.profile.launcher, "up", str(fleet_dir), "--port", str(self.port)]
        self._proc = spawn(args, env=env, log=self.log)
        wait_http(f"http://127.0.0.1:{self.port}/admin/ready", proc=self._proc, log=self.log)
        # One real request before any load: a wrong fleet fails here with the gateway's own words.
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
        status, reply = post_json(
            self.base_url + "/chat/completions", body, {"authorization": f"Bearer {self.key}"}
        )
        if status != 200:
            self.__exit__()
            raise RuntimeError(f"the gateway answered {status} to a first request: {reply[:500]!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            stop(self._proc)


def load_spec(settings: Settings, url: str, *, stream: bool, key: str | None) -> LoadSpec:
    return LoadSpec(
        url=url,
        rate=settings.rate,
        duration=settings.duration,
        warmup=settings.warmup,
        model=MODEL,
        stream=stream,
        message_chars=settings.message_chars,
        directives=(f"output_tokens={settings.output_tokens}",),
        api_key=key,
        timeout=30.0,
    )


def measure(spec: LoadSpec, pids: Mapping[str, int | None]) -> dict[str, Any]:
    """One load run; CPU of each process over its measured window, as seconds and per 1,000 requests."""
    window = CpuWindow(pids)
    gateway = pids.get("gateway")
    threads: list[dict[int, float]] = []

    def on_phase(phase: Phase) -> None:
        if phase == "measure":
            window.open()
        elif phase == "done":
            window.close()
        if phase in ("measure", "done") and gateway is not None:
            threads.append(thread_cpu_seconds(gateway))

    result = run(spec, on_phase=on_phase)
    per_1k = {name: used / result.requests * 1000 for name, used in window.used.items()}
    data: dict[str, Any] = {"result": result.to_json(), "cpu_s": window.used, "cpu_s_per_1k": per_1k}
    if gateway is not None and len(threads) == 2:
        # Which of the gateway's threads did the work: the event loop, or helpers such as aiosqlite's.
        used = {tid: threads[1][tid] - threads[0].get(tid, 0.0) for tid in threads[1]}
        loop = used.pop(gateway, 0.0)
        data["gateway_threads_cpu_s"] = {"event_loop": loop, "other_threads": sum(used.values())}
    return data


def _line(label: str, run_data: dict[str, Any]) -> str:
    result = run_data["result"]
    latency = result["latency_ms"] or {}
    errors = ", ".join(f"{k}: {v}" for k, v in result["errors"].items()) or "no errors"
    p = " / ".join(f"{latency.get(q, float('nan')):.2f}" for q in ("p50", "p90", "p99"))
    return f"  {label:<34} {result['ok']:>6} ok, {errors}; p50/p90/p99 {p} ms"


def run_profile(settings: Settings, profile: Profile, sim: SimProcess, workdir: Path) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    profiled: dict[str, Any] = {}
    with Gateway(profile, sim.base_url + "/v1", workdir) as gateway:
        pids = {"gateway": gateway.pid, "sim": sim.pid, "load": None}
        for rep in range(settings.repeat):
            for mode in settings.modes:
                targets = [("direct", sim.base_url + "/v1", None), ("gateway", gateway.base_url, gateway.key)]
                # Alternate which target goes first, so a drift of the machine does not favour one.
                for target, url, key in targets if rep % 2 == 0 else targets[::-1]:
                    spec = load_spec(settings, url, stream=MODES[mode], key=key)
                    data = measure(spec, pids)
                    data.update(profile=profile.name, mode=mode, target=target, repetition=rep + 1)
                    if target == "gateway":
                        data["gateway_memory_mb"] = memory_mb(gateway.pid)
                    runs.append(data)
                    print(_line(f"{profile.name} {mode} {target} (run {rep + 1})", data), flush=True)
        if settings.py_spy:
            for mode in settings.modes:
                profiled[mode] = _profile_run(settings, gateway, mode, workdir)
    return {"runs": runs, "py_spy": profiled}


def _profile_run(settings: Settings, gateway: Gateway, mode: str, workdir: Path) -> dict[str, Any]:
    """One more gateway run with py-spy sampling it; its latencies are not used (sampling perturbs them)."""
    output = workdir / f"py-spy-{mode}.txt"
    sampler = pyspy.record(gateway.pid, settings.warmup + settings.duration, output)
    spec = load_spec(settings, gateway.base_url, stream=MODES[mode], key=gateway.key)
    data = measure(spec, {"gateway": gateway.pid})
    _, err = sampler.communicate()
    if sampler.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    print(_line(f"{gateway.profile.name} {mode} gateway (py-spy)", data), flush=True)
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
    names = ",".join(p.name for p in PROFILES)
    p.add_argument("--profiles", default=names, help=f"comma-separated profiles (default {names})")
    p.add_argument("--py-spy", action="store_true", help="also profile the gateway with py-spy, per mode")
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    profiles = [n for n in args.profiles.split(",") if n]
    unknown = [m for m in modes if m not in MODES] + [
        n for n in profiles if n not in {x.name for x in PROFILES}
    ]
    if unknown or args.repeat < 1:
        p.error(f"unknown modes/profiles {unknown}" if unknown else "--repeat must be >= 1")
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
        "profiles": {p.name: p.description for p in PROFILES if p.name in settings.profiles},
        "runs": [],
        "py_spy": {},
    }
    with SimProcess(sim_config(settings.upstream_ms)) as sim:
        for profile in (p for p in PROFILES if p.name in settings.profiles):
            with tempfile.TemporaryDirectory(prefix=f"fleetplane-bench-{profile.name}-") as tmp:
                out = run_profile(settings, profile, sim, Path(tmp))
            data["runs"] += out["runs"]
            if out["py_spy"]:
                data["py_spy"][profile.name] = out["py_spy"]
    data["summary"] = summarize(data["runs"])
    for profile_name, modes in data["py_spy"].items():
        for mode, profiled in modes.items():
            raw = result_path(f"gateway_overhead-{profile_name}-{mode}-py-spy", started, "txt")
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
