"""Running the simulator: the effective config from file and flags, and uvicorn on a socket bound here.

The socket is bound before uvicorn starts so that `--port 0` can report the port it got; the port is
written to `--ready-file` only once the server is listening. With `--watch-stdin` the process exits when
its standard input closes, which is how a `SimProcess` child follows its parent even after a SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from fleetplane.sim.app import SimApp
from fleetplane.sim.config import SimConfig, default_config, load_config, model_for_name
from fleetplane.telemetry.tokens import count_text


def effective_config(
    config_file: str | Path | None = None,
    *,
    seed: int | None = None,
    require_key: str | None = None,
    models: Sequence[str] = (),
    instant: bool = False,
) -> SimConfig:
    """The config file (or the built-in default) with command-line flags applied; raises ConfigError."""
    config = load_config(config_file) if config_file is not None else default_config()
    updates: dict[str, object] = {}
    if seed is not None:
        updates["seed"] = seed
    if require_key is not None:
        updates["require_key"] = require_key
    if instant:
        updates["instant"] = True
    if models:
        updates["models"] = {
            **config.models,
            **{name: config.models.get(name) or model_for_name(name) for name in models},
        }
    return config.model_copy(update=updates) if updates else config


@dataclass
class ServeOptions:
    config: SimConfig
    host: str = "127.0.0.1"
    port: int = 0
    ready_file: Path | None = None
    watch_stdin: bool = False
    parent_pid: int | None = None
    log_level: str = "warning"
    quiet: bool = False


class _IncompleteResponseFilter(logging.Filter):
    """Truncation faults end responses early on purpose; uvicorn would log each one as an app error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, options: ServeOptions, port: int) -> None:
        super().__init__(config)
        self.options = options
        self.port = port

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.started:
            return
        options = self.options
        if not options.quiet:
            names = ", ".join(options.config.models)
            print(
                f"fleetplane sim listening on http://{_url_host(options.host)}:{self.port} "
                f"(seed {options.config.seed}; models: {names})",
                file=sys.stderr,
                flush=True,
            )
        if options.ready_file is not None:
            partial = options.ready_file.with_name(options.ready_file.name + ".tmp")
            partial.write_text(str(self.port))
            partial.replace(options.ready_file)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for a TCP socket, and
    # without it a kept-alive client waits out a delayed ACK (~40 ms) on every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _die_with_parent(parent_pid: int) -> None:
    # PR_SET_PDEATHSIG: the kernel sends SIGTERM when the parent goes, however it goes. Linux only.
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        # The parent died before the signal was armed.
        os.kill(os.getpid(), signal.SIGTERM)


def _watch_stdin(server: uvicorn.Server) -> None:
    def watch() -> None:
        # os.read on the raw descriptor, not sys.stdin: a daemon thread blocked inside a buffered reader
        # holds its lock, and the interpreter aborts at exit when it cannot take it.
        with contextlib.suppress(OSError):
            while os.read(0, 65536):
                pass
        server.should_exit = True

    threading.Thread(target=watch, name="sim-stdin-watch", daemon=True).start()


def _pick(module: str, preferred: str, fallback: str) -> str:
    try:
        __import__(module)
    except ImportError:
        return fallback
    return preferred


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0 if signum == signal.SIGTERM else 128 + signum)


def run(options: ServeOptions) -> None:
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the handler it
        # found; this one turns it into a clean exit (0 for SIGTERM) instead of a death by signal or a
        # KeyboardInterrupt traceback.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        signal.signal(signal.SIGINT, _exit_on_signal)
    if options.parent_pid is not None:
        _die_with_parent(options.parent_pid)
    # The encoding loads on first use (~0.1 s); pay for it before the first request, not during it.
    count_text("warm up")
    sock = _bind(options.host, options.port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        SimApp(options.config),
        loop=_pick("uvloop", "uvloop", "asyncio"),
        http=_pick("httptools", "httptools", "h11"),
        lifespan="off",
        access_log=False,
        log_level=options.log_level,
        timeout_keep_alive=30,
        # Hung streams never finish on their own; give open connections a moment, then cut them.
        timeout_graceful_shutdown=1,
        backlog=4096,
    )
    logging.getLogger("uvicorn.error").addFilter(_IncompleteResponseFilter())
    server = _Server(config, options, port)
    if options.watch_stdin:
        _watch_stdin(server)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
