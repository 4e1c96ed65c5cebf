"""Sampling a running process with py-spy and reading where its CPU went.

py-spy is not a fleetplane dependency: `.venv/bin/pip install py-spy` to use it. It records collapsed
stacks ("frame;frame;frame COUNT", outermost first). Sampling is restricted to the thread holding the GIL
(`--gil`): py-spy's own idle detection counted threads blocked in C (the event loop in epoll, aiosqlite's
worker on its queue) as busy, while /proc/PID/task/*/stat showed the event-loop thread using ~99% of the
gateway's CPU. GIL samples are Python and C-extension work under the GIL, so shares are of busy time,
not of wall time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")

# Where a file's code comes from, first match wins: the buckets "where the time goes" is told in.
_AREAS: tuple[tuple[str, str], ...] = (
    ("fleetplane/gateway/quota/", "fleetplane L1 quota policy"),
    ("fleetplane/gateway/breaker/", "fleetplane L2 breaker policy"),
    ("fleetplane/gateway/", "fleetplane gateway (other)"),
    ("fleetplane/state/quota/", "fleetplane quota store"),
    ("fleetplane/state/breaker/", "fleetplane breaker store"),
    ("fleetplane/state/", "fleetplane state (KV: cooldowns, breaker marks)"),
    ("fleetplane/store/", "fleetplane store (usage ledger)"),
    ("fleetplane/telemetry/", "fleetplane telemetry (tokens, cost)"),
    ("fleetplane/", "fleetplane other"),
    ("opentelemetry/", "OpenTelemetry SDK (spans, metrics)"),
    ("starlette/", "starlette"),
    ("uvicorn/", "uvicorn (HTTP server)"),
    ("aiohttp/", "aiohttp (upstream client)"),
    ("sqlalchemy/", "sqlalchemy"),
    ("aiosqlite/", "aiosqlite"),
    ("psycopg", "psycopg (usage ledger on Postgres)"),
    ("redis/", "redis-py (Redis client)"),
    ("msgpack/", "msgpack"),
    ("genai_prices/", "genai-prices"),
    ("asyncio/", "asyncio"),
    ("uvloop/", "uvloop"),
    ("multidict/", "aiohttp (upstream client)"),
    ("yarl/", "aiohttp (upstream client)"),
)


# Steps of a request, inclusive of everything they call (a sample may count in several: the router calls
# the quota policy, for one). The share of busy samples whose stack passes through each.
_STEPS: tuple[tuple[str, str], ...] = (
    ("L2 breakers (policy + store + KV)", "fleetplane/gateway/breaker/"),
    ("L1 quotas (policy + store)", "fleetplane/gateway/quota/"),
    ("L3 router (incl. L1, upstream call, cooldowns)", "fleetplane/gateway/router.py"),
    ("L3 cooldowns", "fleetplane/gateway/cooldown.py"),
    ("usage ledger", "fleetplane/gateway/ledger.py"),
)


def available() -> str | None:
    """The py-spy executable beside this Python, else on PATH; None when it is not installed."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, output: Path, *, rate: int = 500) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `seconds`; wait on the returned process before reading `output`."""
    exe = available()
    if exe is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    args = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    args += ["--rate", str(rate), "--gil", "--format", "raw", "--function", "--output", str(output)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@dataclass(frozen=True)
class Frame:
    name: str
    file: str

    def __str__(self) -> str:
        return f"{self.name} ({self.file})"


def parse(text: str) -> list[tuple[list[Frame], int]]:
    stacks: list[tuple[list[Frame], int]] = []
    for line in text.splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        frames = []
        for raw in body.split(";"):
            match = _FRAME.match(raw)
            frames.append(Frame(match["name"], match["file"]) if match else Frame(raw, ""))
        stacks.append((frames, int(count)))
    return stacks


def area(file: str) -> str:
    path = file.replace("\\", "/")
    for marker, name in _AREAS:
        if marker in path:
            return name
    return "other (stdlib, C extensions)"


def summarize(text: str, *, top: int = 25) -> dict[str, Any]:
    """Shares of busy samples: per function by itself (self) and with its callees (inclusive), per area."""
    stacks = parse(text)
    total = sum(count for _, count in stacks)
    own: Counter[Frame] = Counter()
    inclusive: Counter[Frame] = Counter()
    areas: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        own[frames[-1]] += count
        areas[area(frames[-1].file)] += count
        for frame in set(frames):
            inclusive[frame] += count
        files = {f.file.replace("\\", "/") for f in frames}
        for name, marker in _STEPS:
            if any(marker in file for file in files):
                steps[name] += count

    def share(counter: Counter[Any]) -> list[dict[str, Any]]:
        return [
            {"frame": str(key), "samples": n, "percent": round(100 * n / total, 1) if total else 0.0}
            for key, n in counter.most_common(top)
        ]

    ours: Counter[Frame] = Counter({f: n for f, n in inclusive.items() if "fleetplane/" in f.file})
    return {
        "samples": total,
        "self": share(own),
        "inclusive": share(inclusive),
        # The gateway's own functions with everything they call: which step of a request costs what.
        "fleetplane_inclusive": share(ours),
        "areas": share(areas),
        "steps": share(steps),
    }
