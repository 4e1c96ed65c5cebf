"""What the benchmarks share: process CPU and memory from /proc, the machine's description, free ports,
child processes that die with the benchmark, and where results are written.

CPU is read as utime + stime of /proc/PID/stat: on a shared, noisy machine wall-clock latency moves
with the neighbours, CPU-seconds per request much less.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results"
_TICKS = os.sysconf("SC_CLK_TCK")
# Local servers only: never through a proxy from the environment.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def cpu_seconds(pid: int | None = None, *, tid: int | None = None) -> float:
    """User + system CPU seconds a process (this one when `pid` is None), or one of its threads, has used."""
    path = f"/proc/{pid}/stat" if pid is not None else "/proc/self/stat"
    if tid is not None:
        path = f"/proc/{pid}/task/{tid}/stat"
    with open(path, "rb") as f:
        stat = f.read()
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    fields = stat[stat.rindex(b")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds per thread id of a process (its main thread's id is the pid)."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):  # a thread may end between listing and reading
            out[int(task.name)] = cpu_seconds(pid, tid=int(task.name))
    return out


def memory_mb(pid: int) -> dict[str, float]:
    """Resident set size now and at its peak (VmHWM), in MiB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss" if key == "VmRSS" else "peak_rss"] = int(value.split()[0]) / 1024
    return out


CpuMeter = Callable[[], float]  # cumulative CPU seconds of something, read now


def process_meter(pid: int | None) -> CpuMeter:
    """A process's cumulative CPU seconds (this process when `pid` is None)."""
    return lambda: cpu_seconds(pid)


@dataclass
class CpuWindow:
    """CPU seconds each named meter counted between `open()` and `close()`."""

    meters: Mapping[str, CpuMeter]

    def __post_init__(self) -> None:
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def open(self) -> None:
        self._start = {name: meter() for name, meter in self.meters.items()}

    def close(self) -> None:
        self.used = {name: meter() - self._start[name] for name, meter in self.meters.items()}


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def source() -> dict[str, Any]:
    """Which fleetplane code ran: the package path and the commit, and whether the checkout had changes.

    Others edit the same checkout; to benchmark one commit, run from an exported copy (benchmarks/README.md)
    with a COMMIT file beside its src/.
    """
    import fleetplane

    package = Path(fleetplane.__file__).resolve().parent
    info: dict[str, Any] = {"fleetplane": str(package)}
    marker = package.parents[1] / "COMMIT"
    if marker.exists():
        info["commit"] = marker.read_text().strip()
        info["exported"] = True
        return info
    repo = BENCHMARKS.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout.strip()

    info["commit"] = git("rev-parse", "HEAD")
    info["uncommitted_changes_in_src"] = git("status", "--porcelain", "--", "src").splitlines()
    return info


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG (1): the child gets SIGTERM when the benchmark dies, however it dies.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def spawn(args: Sequence[str], *, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_http(url: str, *, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Wait until GET url answers 200; fail with the process's output if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{tail(log)}")
        with contextlib.suppress(urllib.error.URLError, OSError), _LOCAL.open(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s:\n{tail(log)}")


def request(
    url: str, *, method: str = "GET", data: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    """One HTTP call to a local server: its status and body (an error status is an answer, not a raise)."""
    if data is None and method == "POST":
        data = b""
    req = urllib.request.Request(url, data=data, method=method)
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with _LOCAL.open(req, timeout=30) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def post_json(url: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> tuple[int, bytes]:
    all_headers = {"content-type": "application/json", **headers}
    return request(url, method="POST", data=orjson.dumps(body), headers=all_headers)


def tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip() or "(no output)"
    except OSError:
        return "(no output)"


def now_utc() -> datetime:
    return datetime.now(UTC)


def result_path(name: str, when: datetime, suffix: str) -> Path:
    """benchmarks/results/NAME-YYYYmmddTHHMMSSZ.SUFFIX (the directory is git-ignored)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{name}-{when.strftime('%Y%m%dT%H%M%SZ')}.{suffix}"


def write_result(name: str, data: Mapping[str, Any], when: datetime) -> Path:
    path = result_path(name, when, "json")
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path


def command_line() -> str:
    """How this benchmark was started, as a command to paste."""
    script = os.path.relpath(sys.argv[0], BENCHMARKS.parent)
    return " ".join([".venv/bin/python", script, *sys.argv[1:]])


def spread(values: Sequence[float]) -> dict[str, float]:
    """min / median / max of repeated measurements: the honest error bar of a noisy machine."""
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return {"min": ordered[0], "median": median, "max": ordered[-1]}
