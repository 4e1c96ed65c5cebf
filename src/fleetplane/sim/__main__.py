"""`python -m fleetplane.sim`: the simulator's own entry point, the one `SimProcess` starts.

It takes the same options as `fleetplane sim` (see `docs/sim.md`), plus two that only a parent process
uses: `--watch-stdin` and `--parent-pid`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleetplane.sim.config import ConfigError
from fleetplane.sim.server import ServeOptions, effective_config, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fleetplane.sim",
        description="An OpenAI- and Anthropic-compatible model simulator (see docs/sim.md).",
    )
    p.add_argument("--config", type=Path, help="YAML config file (default: the built-in models)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default 0)")
    p.add_argument("--seed", type=int, help="seed for content, latency and faults (overrides the config)")
    p.add_argument("--ready-file", type=Path, help="write the bound port here once listening")
    p.add_argument("--require-key", help="accept only this API key (Bearer or x-api-key)")
    p.add_argument("--model", action="append", default=[], metavar="NAME", help="also serve this model")
    p.add_argument("--instant", action="store_true", help="answer with no latency (for tests)")
    p.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.add_argument("--quiet", action="store_true", help="do not print the listening address")
    p.add_argument("--watch-stdin", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = effective_config(
            args.config, seed=args.seed, require_key=args.require_key, models=args.model, instant=args.instant
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = ServeOptions(
        config=config,
        host=args.host,
        port=args.port,
        ready_file=args.ready_file,
        watch_stdin=args.watch_stdin,
        parent_pid=args.parent_pid,
        log_level=args.log_level,
        quiet=args.quiet,
    )
    try:
        run(options)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
