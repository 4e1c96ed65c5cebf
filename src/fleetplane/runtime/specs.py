"""From an Agent revision to the `ReplicaSpec` a launcher starts: paths resolved, quantities in units,
probes translated, secrets read from the host, the declarative runner's command line, the shared
infrastructure (gateway URL, the agent's virtual key) filled in.

A spec without a readiness probe gets `GET /healthz` every second (the health endpoint every agent
serves, docs/runtime.md): a process that has started but does not listen yet must not take traffic.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from fleetplane.manifests.agent import Agent, Probe, byte_count, cpu_millis
from fleetplane.manifests.agent import Probes as ProbesSpec
from fleetplane.runtime.replica import (
    Backoff,
    ExecCheck,
    HttpCheck,
    Probes,
    ProbeSpec,
    ReplicaSpec,
    Resources,
    Tier,
)

DEFAULT_READINESS = ProbeSpec(HttpCheck("/healthz"), period=1.0, timeout=2.0, failure_threshold=3)
RUNNER_ENV = "FLEETPLANE_AGENT_SPEC"  # the declarative spec, as JSON, for `fleetplane agent serve`


class SpecError(Exception):
    """An agent revision that cannot be started here (a secret that cannot be read, a missing directory)."""


@dataclass
class SpecSettings:
    """What every replica of this server shares."""

    log_dir: Path
    gateway_url: str | None = None
    backoff: Backoff = field(default_factory=Backoff)
    stop_grace: float = 10.0
    # Runs `python` commands and the declarative runner inside the sandbox. Normalised, not resolved: a
    # virtualenv's interpreter is its symlink (resolving it loses the venv); ".." would not exist inside.
    python: str = os.path.abspath(sys.executable)


def _probe(probe: Probe | None) -> ProbeSpec | None:
    if probe is None:
        return None
    check: HttpCheck | ExecCheck
    if probe.http is not None:
        check = HttpCheck(probe.http.path, probe.http.port)
    else:
        assert probe.exec is not None  # the manifest validates one of the two
        check = ExecCheck(tuple(probe.exec.command))
    return ProbeSpec(
        check,
        initial_delay=probe.initial_delay,
        period=probe.period,
        timeout=probe.timeout,
        failure_threshold=probe.failure_threshold,
        success_threshold=probe.success_threshold,
    )


def probes(spec: ProbesSpec) -> Probes:
    readiness = _probe(spec.readiness) or DEFAULT_READINESS
    return Probes(startup=_probe(spec.startup), readiness=readiness, liveness=_probe(spec.liveness))


def read_secrets(agent: Agent, base_dir: Path | None) -> dict[str, bytes]:
    """Each secret's bytes, from the host's environment or a file; never logged."""
    values: dict[str, bytes] = {}
    for secret in agent.spec.secrets:
        if secret.env is not None:
            value = os.environ.get(secret.env)
            if value is None:
                raise SpecError(f"Agent/{agent.name}: secret {secret.name!r}: ${secret.env} is not set")
            values[secret.name] = value.encode()
        else:
            path = Path(secret.file or "")
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            try:
                values[secret.name] = path.read_bytes()
            except OSError as exc:
                raise SpecError(
                    f"Agent/{agent.name}: secret {secret.name!r}: cannot read {path}: {exc.strerror}"
                ) from None
    return values


def _directory(agent: Agent, what: str, value: str | None, base_dir: Path | None) -> str | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_dir():
        raise SpecError(f"Agent/{agent.name}: spec.run.{what}: {path} is not a directory")
    return str(path.resolve())


def argv(agent: Agent, settings: SpecSettings) -> tuple[str, ...]:
    """The command line: a `python`/`python3` command runs on fleetplane's own interpreter (the sandbox
    sees the host's root read-only, so its packages, the openai SDK among them, are there); a
    declarative agent runs the runner."""
    if agent.spec.run is not None:
        command = list(agent.spec.run.command)
        if command[0] in ("python", "python3") and agent.spec.run.rootfs is None:
            command[0] = settings.python
        return tuple(command)
    return (settings.python, "-m", "fleetplane.cli", "agent", "serve")


def environment(agent: Agent) -> dict[str, str]:
    env = dict(agent.spec.env)
    env["FLEETPLANE_AGENT"] = agent.name
    if agent.spec.declarative is not None:
        env[RUNNER_ENV] = orjson.dumps(
            {"name": agent.name, **agent.spec.declarative.model_dump(mode="json")}
        ).decode()
    return env


def replica_spec(
    agent: Agent,
    *,
    replica_id: str,
    revision: str,
    tier: Tier,
    base_dir: Path | None,
    settings: SpecSettings,
    virtual_key: str | None,
    gpu_devices: tuple[str, ...] = (),
) -> ReplicaSpec:
    """The spec of one replica of `agent` at `revision`; raises `SpecError` when it cannot start here."""
    spec = agent.spec
    run = spec.run
    env = environment(agent)
    if gpu_devices:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_devices)
    return ReplicaSpec(
        agent=agent.name,
        replica_id=replica_id,
        revision=revision,
        argv=argv(agent, settings),
        log_dir=settings.log_dir,
        tier=tier,
        cwd=_directory(agent, "workdir", run.workdir if run else None, base_dir),
        rootfs=_directory(agent, "rootfs", run.rootfs if run else None, base_dir),
        env=env,
        secrets=read_secrets(agent, base_dir),
        resources=Resources(
            cpu_millis=cpu_millis(spec.resources.cpu),
            memory_bytes=byte_count(spec.resources.memory),
            pids=spec.resources.pids,
            disk_bytes=byte_count(spec.resources.disk),
            gpu_devices=gpu_devices,
        ),
        network=spec.network.mode,
        allow=tuple(spec.network.allow),
        gateway_url=settings.gateway_url,
        virtual_key=virtual_key,
        port=spec.port,
        probes=probes(spec.probes),
        restart_policy=spec.restart_policy,
        backoff=settings.backoff,
        stop_grace=settings.stop_grace,
    )
