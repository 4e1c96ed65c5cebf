"""`fleetplane up`: apply a fleet directory and serve it — gateway and admin API on one port, with a
simulator child process for every `sim` provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.panel import Panel
from rich.table import Table

from fleetplane.cli.common import DatabaseURL, console, err_console, fail, now
from fleetplane.cli.evals_loop import prepare_schedules
from fleetplane.cli.rollout_gate import KEY_NAME as ROLLOUT_GATE_KEY
from fleetplane.cli.rollout_gate import EvalsRolloutGate
from fleetplane.cli.up_fleet import QUICKSTART_LABEL, Started, bundled_fleet, quickstart_key, start_simulators
from fleetplane.cli.watch import FleetWatcher
from fleetplane.evals.judges.client import KEY_ENV as JUDGE_KEY_ENV
from fleetplane.evals.judges.family import ModelCatalog
from fleetplane.evals.online.config import ENV as ONLINE_EVALS_ENV
from fleetplane.evals.online.config import ConfigError
from fleetplane.evals.online.service import EvalsService, mint_judge_key, mint_own_key
from fleetplane.gateway.app import GatewayRuntime, GatewaySettings
from fleetplane.manifests.agent import Agent
from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.errors import ManifestErrors
from fleetplane.manifests.kinds import Model, Team, VirtualKey
from fleetplane.manifests.loader import load
from fleetplane.pipelines.service import server_service
from fleetplane.runtime.service import AgentService, RuntimeSettings
from fleetplane.server import build_app
from fleetplane.sim.process import SimStartError
from fleetplane.skills import SkillCatalog, SkillError
from fleetplane.skilltools import SkillTools
from fleetplane.store.db import Store
from fleetplane.store.desired import ApplyError, apply_desired
from fleetplane.store.url import redact
from fleetplane.telemetry.backend import Backend


class _Server(uvicorn.Server):
    """uvicorn re-raises Ctrl-C after its graceful shutdown; `up` stops quietly instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _stop(self, sig: int) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def _say(line: str) -> None:
    console.print(line, markup=False, soft_wrap=True)


def _local_url(host: str, port: int) -> str:
    """This server as a process on this host reaches it (a wildcard address is reached on loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for a TCP socket, and
    # without it a kept-alive client waits out a delayed ACK (~40 ms) on every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _banner(
    host: str,
    port: int,
    store: Store,
    started: Started,
    key: tuple[str, str] | None,
    redis_url: str | None,
    telemetry: bool = True,
) -> None:
    base = f"http://{host}:{port}"
    table = Table.grid(padding=(0, 2))
    table.add_row("OpenAI API", f"{base}/v1  (chat/completions, embeddings, models)")
    table.add_row("Anthropic API", f"{base}/v1/messages")
    table.add_row("admin API", f"{base}/admin  (health, ready, gateway/config, quotas, breakers)")
    table.add_row("agents", f"{base}/agents/NAME/invoke  (fleetplane agents list, invoke, logs, rollout)")
    if telemetry:
        table.add_row("telemetry", f"{base}/v1/traces (OTLP receiver), {base}/metrics (Prometheus)")
    else:
        table.add_row("telemetry", "off (--no-telemetry)")
    table.add_row("store", redact(store.url))
    table.add_row("shared state", redact(redis_url) if redis_url else "in-process")
    for name, url in started.sim_urls.items():
        table.add_row(f"simulator ({name})", url)
    if key:
        table.add_row("key to try", f"{key[1]}  (VirtualKey {key[0]}; shown once, a new one each start)")
    console.print(Panel(table, title="fleetplane is up", border_style="green"))
    if key:
        console.print(
            f"Try it:\n  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {key[1]}' "
            "-H 'content-type: application/json' "
            '-d \'{"model": "chat-large", "messages": [{"role": "user", "content": "Hello"}]}\'\n'
            "Press Ctrl-C to stop.",
            markup=False,
            soft_wrap=True,
        )


def settings_from_env(redis_url: str | None) -> GatewaySettings:
    """Gateway settings, with the quota knobs an operator may set in the environment:
    `FLEETPLANE_QUOTA_LEASE` (seconds a reservation lives without news from its gateway) and
    `FLEETPLANE_REPLICAS` (how many replicas share Redis: the `open` fail mode admits limit ÷ replicas)."""
    settings = GatewaySettings(redis_url=redis_url)
    lease = os.environ.get("FLEETPLANE_QUOTA_LEASE")
    if lease:
        try:
            settings.quota_lease = float(lease)
        except ValueError:
            fail(f"FLEETPLANE_QUOTA_LEASE={lease!r} is not a number of seconds")
        if not (math.isfinite(settings.quota_lease) and settings.quota_lease > 0):
            fail(f"FLEETPLANE_QUOTA_LEASE={lease!r}: a lease must be longer than 0 seconds")
    replicas = os.environ.get("FLEETPLANE_REPLICAS")
    if replicas:
        if not replicas.isdigit() or int(replicas) < 1:
            fail(f"FLEETPLANE_REPLICAS={replicas!r} is not a whole number of replicas >= 1")
        settings.replicas = int(replicas)
    return settings


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        directory: Annotated[
            Path | None,
            typer.Argument(
                help="The fleet directory to apply and serve [default: the bundled examples/fleet]."
            ),
        ] = None,
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[
            int, typer.Option(help="Port for the gateway and admin API.", envvar="FLEETPLANE_PORT")
        ] = 8700,
        database_url: DatabaseURL = None,
        redis_url: Annotated[
            str | None,
            typer.Option(
                "--redis-url",
                envvar="FLEETPLANE_REDIS_URL",
                show_envvar=True,
                help="Share cache and cooldowns with other replicas through Redis (default: in-process).",
            ),
        ] = None,
        log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
        telemetry: Annotated[
            bool,
            typer.Option(
                "--telemetry/--no-telemetry",
                envvar="FLEETPLANE_TELEMETRY",
                show_envvar=True,
                help="Trace every request, store traces, receive OTLP and serve /metrics.",
            ),
        ] = True,
        watch: Annotated[
            bool,
            typer.Option(
                "--watch",
                help="Re-apply DIR when it changes (or gets a new git commit) and report drift from it.",
            ),
        ] = False,
    ) -> None:
        """Apply a fleet directory and serve it: the AI gateway (OpenAI and Anthropic APIs) and the admin API on one port, a simulator child process for every `sim` provider. Ctrl-C stops everything."""  # noqa: E501
        fleet = directory or bundled_fleet()
        if fleet is None:
            fail("no fleet directory given and no bundled examples/fleet found; pass a directory")
        if not fleet.exists():
            fail(f"fleet directory {fleet} does not exist")
        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            desired = load(fleet)
        except ManifestErrors as errors:
            for error in errors.errors:
                err_console.print(str(error), markup=False, soft_wrap=True)
            fail(f"{len(errors.errors)} problem(s) in {fleet}; nothing was applied or started", code=1)
        settings = settings_from_env(redis_url)  # before anything is applied or started
        _run(_serve(desired, host, port, database_url, settings, log_level, telemetry, watch))
        console.print("fleetplane stopped.")


def _run(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop where it exists: uvicorn's own `loop=` setting is ignored when it is handed a running
    loop, and the plain asyncio loop costs the gateway about a third of its CPU."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


async def _serve(
    desired: DesiredState,
    host: str,
    port: int,
    database_url: str | None,
    settings: GatewaySettings,
    log_level: str,
    telemetry: bool = True,
    watch: bool = False,
) -> None:
    store = await Store.open(database_url)
    started = Started([], {})
    try:
        try:
            result = await apply_desired(store, desired, now=now())
        except ApplyError as exc:
            fail(f"could not apply {desired.directory}: {exc}", code=1)
        counts = ", ".join(f"{n} {k}" for k, n in desired.counts().items())
        console.print(f"applied {desired.directory} ({counts}); generation {result.generation}", markup=False)
        quickstart = {
            k.name for k in desired.of_kind(VirtualKey) if k.metadata.labels.get(QUICKSTART_LABEL) == "true"
        }
        for minted in (m for m in result.minted if m.key not in quickstart):
            console.print(f"minted key {minted.key}: {minted.secret}  (shown once)", markup=False)
        # In the main thread: the simulators die with this process only if armed from it.
        try:
            started = start_simulators(desired)
        except SimStartError as exc:
            # e.g. the fixed port of the example's simulator is taken by another `fleetplane up`.
            fail(f"could not start the model simulator: {exc}", code=1)
        key = await quickstart_key(store, desired)
        settings.sim_urls = started.sim_urls
        backend: Backend | None = None
        if telemetry:
            try:
                backend = Backend.create(store, service_name="fleetplane-gateway")
            except ValueError as exc:
                fail(f"telemetry settings: {exc}", code=1)
        runtime = GatewayRuntime(store, settings, telemetry=backend.telemetry if backend else None)
        environ = dict(os.environ)
        if environ.get(ONLINE_EVALS_ENV) and not environ.get(JUDGE_KEY_ENV):  # judges get a key of their own
            teams = [(t.name, t.spec.organization) for t in desired.of_kind(Team)]
            environ[JUDGE_KEY_ENV] = await mint_judge_key(store, teams, now()) or ""
        schedules = await prepare_schedules(store, desired, now())  # its key too, before the gateway starts
        try:  # the review API always; the online evaluator when FLEETPLANE_ONLINE_EVALS names a file
            evals = EvalsService.create(
                store,
                spans=backend.receiver.spans if backend else None,
                telemetry=backend.telemetry if backend else None,
                gateway_url=f"http://{host}:{port}",
                catalog=ModelCatalog.from_manifests(desired.of_kind(Model)),
                environ=environ,
            )
        except ConfigError as exc:
            fail(f"online evals: {exc}", code=1)
        pipelines = server_service(  # the pipelines' worker calls models through this very gateway
            store,
            gateway_url=f"http://{host}:{port}/v1",
            gateway_key=key[1] if key else None,
            spans=backend.telemetry.spans if backend else None,
        )
        try:  # the fleet's Agents: sandboxed replicas whose model calls come back here
            agent_settings = RuntimeSettings.from_env(
                gateway_url=_local_url(host, port), fleet_dir=desired.directory
            )
        except ValueError as exc:
            fail(str(exc), code=1)
        # Agents naming a rollout gate: their new revisions must pass their eval suite against the
        # serving one, run through this very server (its judges with a key of their own).
        gated = any(a.spec.rollout.gate is not None for a in desired.of_kind(Agent))
        teams = [(t.name, t.spec.organization) for t in desired.of_kind(Team)]
        gate_key = await mint_own_key(store, ROLLOUT_GATE_KEY, teams, now()) if gated else None
        rollout_gate = EvalsRolloutGate(store, desired.directory, _local_url(host, port), gate_key)
        agents = (
            AgentService(
                store,
                agent_settings,
                spans=backend.telemetry.spans if backend else None,
                gate=rollout_gate,
            )
            if agent_settings.enabled
            else None
        )
        try:  # declarative agents' skills as tools, served from the registry under its trust file
            skill_tools = SkillTools(store, runtime.keys, SkillCatalog(store), _local_url(host, port) + "/v1")
        except SkillError as exc:
            fail(f"skills: {exc}", code=1)
        config = uvicorn.Config(
            build_app(
                runtime, backend, agents=agents, evals=evals, pipelines=pipelines, skill_tools=skill_tools
            ),
            host=host,
            port=port,
            loop="uvloop" if os.name != "nt" else "asyncio",
            http="httptools",
            log_level=log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            proxy_headers=False,  # the admin guard trusts the peer address; X-Forwarded-For must not forge it
        )
        try:
            sock = _listen(host, port)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=1)
        server = _Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn exposes only a flag
            await asyncio.sleep(0.05)
        if server.started:
            _banner(host, sock.getsockname()[1], store, started, key, settings.redis_url, backend is not None)
        watcher = None
        if watch and server.started:  # GitOps: the directory stays what runs, drift is reported
            fleet_watch = FleetWatcher(desired.directory, store, agents, report=_say)
            await fleet_watch.start()
            watcher = asyncio.create_task(fleet_watch.run(), name="fleetplane-watch")
            console.print(f"watching {desired.directory} for changes and new commits", markup=False)
        if schedules is not None and server.started:  # scheduled eval suites, run against this very server
            schedules.start(_local_url(host, sock.getsockname()[1]))
            console.print(f"scheduled eval suites: {', '.join(schedules.suites)}", markup=False)
        try:
            await serving
        finally:
            if schedules is not None:  # before the store closes under it
                await schedules.stop()
        if watcher is not None:
            watcher.cancel()
    finally:
        for sim in started.sims:
            await asyncio.to_thread(sim.stop)
        await store.close()
