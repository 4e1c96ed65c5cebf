"""What the runner runs: the declarative spec handed over in `FLEETPLANE_AGENT_SPEC` (JSON), and where
the gateway is (the sandbox's `OPENAI_BASE_URL` and placeholder `OPENAI_API_KEY`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

SPEC_ENV = "FLEETPLANE_AGENT_SPEC"


class RunnerConfigError(Exception):
    pass


@dataclass(frozen=True)
class RunnerConfig:
    name: str
    model: str
    instructions: str
    instructions_version: str
    max_steps: int
    max_tokens: int
    gateway_url: str  # ends in /v1
    api_key: str
    port: int
    skills: tuple[str, ...] = ()  # published skills offered to the model as tools (name@constraint)


def from_env(env: Mapping[str, str] | None = None) -> RunnerConfig:
    env = os.environ if env is None else env
    raw = env.get(SPEC_ENV)
    if not raw:
        raise RunnerConfigError(f"${SPEC_ENV} is not set: the runner serves a declarative Agent spec")
    try:
        spec = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RunnerConfigError(f"${SPEC_ENV} is not JSON (line {exc.lineno} column {exc.colno})") from None
    base = env.get("OPENAI_BASE_URL") or env.get("FLEETPLANE_GATEWAY_URL")
    if not base:
        raise RunnerConfigError("$OPENAI_BASE_URL is not set: where is the gateway?")
    base = base.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    port = env.get("PORT", "8080")
    if not port.isdigit():
        raise RunnerConfigError(f"$PORT={port!r} is not a port number")
    try:
        return RunnerConfig(
            name=str(spec["name"]),
            model=str(spec["model"]),
            instructions=str(spec["instructions"]),
            instructions_version=str(spec.get("instructions_version", "1")),
            max_steps=int(spec.get("max_steps", 8)),
            max_tokens=int(spec.get("max_tokens", 4096)),
            gateway_url=base,
            api_key=env.get("OPENAI_API_KEY", ""),
            port=int(port),
            skills=tuple(str(s) for s in spec.get("skills") or ()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RunnerConfigError(f"${SPEC_ENV} lacks a field or has a wrong one: {exc}") from None
