"""`SimProcess`: the simulator as a child process, the way the server and every gateway test start it.

    with SimProcess({"instant": True}) as sim:
        client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="sk-test")

The child is `python -m fleetplane.sim --port 0 --ready-file ...`; `start()` returns once it answers
`/sim/health`. It cannot outlive this process: it exits when its stdin pipe closes (which happens however
the parent dies, SIGKILL included) and, started from the main thread on Linux, also on PR_SET_PDEATHSIG.
`stop()` sends SIGTERM, then SIGKILL after a grace period, and reaps it, so no zombie stays behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from fleetplane.sim.config import SimConfig

# The simulator is on this machine: never send its traffic through an HTTP proxy from the environment.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SimStartError(RuntimeError):
    """The simulator did not come up; the message carries its exit status and what it printed."""


def _reap(proc: subprocess.Popen[bytes], stdin: IO[bytes] | None, workdir: str, grace: float) -> int | None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    if stdin is not None:
        with contextlib.suppress(OSError):
            stdin.close()
    shutil.rmtree(workdir, ignore_errors=True)
    return proc.returncode


class SimProcess:
    def __init__(
        self,
        config: SimConfig | Mapping[str, Any] | str | Path | None = None,
        *,
        seed: int | None = None,
        require_key: str | None = None,
        instant: bool = False,
        models: Sequence[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 30.0,
        stop_grace: float = 5.0,
        log_level: str = "warning",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.seed = seed
        self.require_key = require_key
        self.instant = instant
        self.models = list(models)
        self.host = host
        self.requested_port = port
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.log_level = log_level
        self.env = dict(env) if env is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._port: int | None = None
        self._workdir: str | None = None

    # -- addresses ---------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _command(self, workdir: Path) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "fleetplane.sim",
            "--host",
            self.host,
            "--port",
            str(self.requested_port),
        ]
        args += ["--ready-file", str(workdir / "port"), "--watch-stdin", "--log-level", self.log_level]
        config = self.config
        if isinstance(config, SimConfig):
            config = config.model_dump(mode="json")
        if isinstance(config, Mapping):
            # JSON is YAML, so the child reads the dict through the same loader as a user's file.
            path = workdir / "config.yaml"
            path.write_text(json.dumps(dict(config)))
            args += ["--config", str(path)]
        elif config is not None:
            args += ["--config", str(config)]
        if self.seed is not None:
            args += ["--seed", str(self.seed)]
        if self.require_key is not None:
            args += ["--require-key", self.require_key]
        if self.instant:
            args.append("--instant")
        for name in self.models:
            args += ["--model", name]
        # PR_SET_PDEATHSIG fires when the creating *thread* exits, so arm it only from the main thread.
        if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
            args += ["--parent-pid", str(os.getpid())]
        return args

    def start(self) -> Self:
        if self.running:
            return self
        self._workdir = tempfile.mkdtemp(prefix="fleetplane-sim-")
        workdir = Path(self._workdir)
        log_path = workdir / "output.log"
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                self._command(workdir), stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self._proc = proc
        self._finalizer = weakref.finalize(self, _reap, proc, proc.stdin, self._workdir, self.stop_grace)
        try:
            self._port = self._wait_ready(workdir / "port", log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, ready_file: Path, log_path: Path) -> int:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        port: int | None = None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise SimStartError(
                    f"the simulator exited with status {code} before it was ready:\n{_tail(log_path)}"
                )
            if port is None and ready_file.exists():
                with contextlib.suppress(ValueError):
                    port = int(ready_file.read_text().strip())
            if port is not None and self._healthy(port):
                return port
            time.sleep(0.02)
        raise SimStartError(
            f"the simulator did not answer /sim/health within {self.startup_timeout:.0f}s:\n{_tail(log_path)}"
        )

    def _healthy(self, port: int) -> bool:
        host = f"[{self.host}]" if ":" in self.host else self.host
        try:
            with _LOCAL.open(f"http://{host}:{port}/sim/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> int | None:
        """Stop the simulator (SIGTERM, then SIGKILL after `stop_grace` seconds); returns its exit status."""
        if self._finalizer is None or self._proc is None:
            return None
        proc = self._proc
        self._finalizer.detach()
        code = _reap(proc, proc.stdin, self._workdir or "", self.stop_grace)
        self._finalizer = None
        self._port = None
        return code

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.stop)

    # -- admin API ---------------------------------------------------------------------------------------

    def admin(self, method: str, path: str, payload: Any = None) -> Any:
        """Call the admin API (`/sim/...`) and return its JSON; raises `urllib.error.HTTPError` on 4xx/5xx."""
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.url(path), data=data, method=method)
        request.add_header("content-type", "application/json")
        with _LOCAL.open(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def stats(self) -> dict[str, Any]:
        return dict(self.admin("GET", "/sim/stats"))

    def reset_stats(self) -> None:
        self.admin("POST", "/sim/stats/reset")

    def add_fault(self, mode: str, model: str = "*", **spec: Any) -> dict[str, Any]:
        return dict(self.admin("POST", "/sim/faults", {"mode": mode, "model": model, **spec}))

    def clear_faults(self, fault_id: str | None = None) -> int:
        path = "/sim/faults" if fault_id is None else f"/sim/faults/{fault_id}"
        return int(self.admin("DELETE", path)["cleared"])

    def reset_rate_limits(self) -> None:
        self.admin("POST", "/sim/ratelimits/reset")


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return text[-limit:].strip() or "(no output)"
