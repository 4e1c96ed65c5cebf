"""`Agent`: an agent run as a supervised, sandboxed service — bring-your-own (a command, or a root
filesystem and an entrypoint) or declarative (a model group, versioned instructions and limits, run by
fleetplane's own agent runner).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from fleetplane.manifests.document import Manifest, kind
from fleetplane.manifests.fields import Duration, FieldError, Name, Strict

Tier = Literal["process", "bwrap", "gvisor", "microvm"]
Trust = Literal["trusted", "internal", "untrusted"]
# The weakest tier each trust level may run in (stronger tiers are always allowed).
MINIMUM_TIER: dict[str, Tier] = {"trusted": "process", "internal": "bwrap", "untrusted": "microvm"}
TIER_ORDER: tuple[Tier, ...] = ("process", "bwrap", "gvisor", "microvm")

_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_BYTES = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_UNITS = {
    None: 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def cpu_millis(value: str) -> int:
    """A Kubernetes CPU quantity ('500m', '1', '0.25') in thousandths of a core."""
    text = str(value).strip()
    if not _CPU.match(text):
        raise FieldError(
            f"{text!r} is not a CPU quantity", expected="cores like '1' or '0.5', or millicores like '250m'"
        )
    return int(text[:-1]) if text.endswith("m") else round(float(text) * 1000)


def byte_count(value: str) -> int:
    """A Kubernetes memory/storage quantity ('256Mi', '1Gi', '500M', '1048576') in bytes."""
    text = str(value).strip()
    match = _BYTES.match(text)
    if not match:
        raise FieldError(
            f"{text!r} is not a size", expected="bytes, or a number with Ki/Mi/Gi (or K/M/G), e.g. 256Mi"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def _cpu(value: str) -> str:
    if cpu_millis(value) <= 0:
        raise FieldError("a CPU limit must be above zero", expected="e.g. '250m' or '1'")
    return value


def _size(value: str) -> str:
    if byte_count(value) <= 0:
        raise FieldError("a size must be above zero", expected="e.g. '256Mi'")
    return value


CpuQuantity = Annotated[str, AfterValidator(_cpu)]
SizeQuantity = Annotated[str, AfterValidator(_size)]


class Gpu(Strict):
    count: int = Field(default=0, ge=0)
    mig: str | None = None  # a MIG profile, e.g. "1g.5gb"
    share: float | None = Field(default=None, gt=0, le=1)  # a time-sliced share (trusted agents only)


class Resources(Strict):
    cpu: CpuQuantity = "1"
    memory: SizeQuantity = "512Mi"
    pids: int = Field(default=256, ge=8)
    disk: SizeQuantity = "256Mi"  # the size of the sandbox's writable space
    gpu: Gpu | None = None


class Network(Strict):
    # gateway: egress only to the fleetplane gateway and telemetry receiver; none: nothing at all;
    # allowlist: the gateway plus these host:port destinations.
    mode: Literal["gateway", "none", "allowlist"] = "gateway"
    allow: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _allow_only_with_allowlist(self) -> Network:
        if self.allow and self.mode != "allowlist":
            raise FieldError("'allow' needs mode: allowlist", at=("allow",))
        for i, entry in enumerate(self.allow):
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise FieldError(
                    f"{entry!r} is not host:port", at=("allow", i), expected="e.g. api.example.com:443"
                )
        return self


class HttpProbe(Strict):
    path: str = "/healthz"
    port: int | None = Field(default=None, ge=1, le=65535)  # default: the agent's port


class ExecProbe(Strict):
    command: list[str] = Field(min_length=1)


class Probe(Strict):
    http: HttpProbe | None = None
    exec: ExecProbe | None = None
    initial_delay: Duration = 0.0
    period: Duration = 5.0
    timeout: Duration = 2.0
    failure_threshold: int = Field(default=3, ge=1)
    success_threshold: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Probe:
        if (self.http is None) == (self.exec is None):
            raise FieldError("a probe is http or exec", expected="exactly one of http, exec")
        return self


class Probes(Strict):
    startup: Probe | None = None
    readiness: Probe | None = None
    liveness: Probe | None = None


class Replicas(Strict):
    min: int = Field(default=1, ge=0)
    max: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.min > self.max:
            raise FieldError(f"min {self.min} is above max {self.max}", expected="min <= max")
        return self


class Autoscaling(Strict):
    target_in_flight: float = Field(default=4.0, gt=0)  # requests in flight per replica to aim for
    upscale_delay: Duration = 5.0
    downscale_delay: Duration = 60.0
    scale_to_zero: bool = False
    warm_pool: int = Field(default=0, ge=0)  # idle sandboxes kept started, for fast scale-from-zero


class Secret(Strict):
    """A secret the agent reads as a file, /run/secrets/<name>; never in env, logs, spans or the store."""

    name: Name
    env: str | None = None  # where fleetplane reads it from (the host's environment) ...
    file: str | None = None  # ... or a file on the host

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise FieldError("a secret comes from one place", expected="exactly one of env, file")
        return self


class BringYourOwn(Strict):
    command: list[str] = Field(min_length=1)  # run in the sandbox; the agent listens on $PORT
    rootfs: str | None = None  # a root filesystem directory (relative to the manifest) to run in
    workdir: str | None = None  # a directory (relative to the manifest) mounted read-only at /agent


class Declarative(Strict):
    model: str = Field(min_length=1)  # a model group
    instructions: str = Field(min_length=1)
    instructions_version: str = "1"
    max_steps: int = Field(default=8, ge=1)
    max_tokens: int = Field(default=4096, ge=1)
    skills: list[str] = Field(default_factory=list)  # published skills usable as tools, name@constraint


class RolloutGate(Strict):
    """An eval suite a new revision must not regress on before it replaces the serving one."""

    suite: Name  # an EvalSuite of the fleet, run against each revision's replicas
    margin: float | None = Field(default=None, ge=0)  # default: each gated dimension's own margin


class Rollout(Strict):
    gate: RolloutGate | None = None


class AgentSpec(Strict):
    run: BringYourOwn | None = None
    declarative: Declarative | None = None
    port: int = Field(default=8080, ge=1, le=65535)  # where the agent listens inside its sandbox
    replicas: Replicas = Field(default_factory=Replicas)
    trust: Trust = "internal"
    isolation: Tier | None = None  # default: the weakest tier the trust level allows that works here
    allow_degrade_to_gvisor: bool = (
        False  # untrusted without a working microVM: gVisor instead (logged loudly)
    )
    resources: Resources = Field(default_factory=Resources)
    network: Network = Field(default_factory=Network)
    probes: Probes = Field(default_factory=Probes)
    restart_policy: Literal["Always", "OnFailure", "Never"] = "Always"
    secrets: list[Secret] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    autoscaling: Autoscaling | None = None
    rollout: Rollout = Field(default_factory=Rollout)
    team: Name | None = None  # the team its virtual key belongs to (default: the only team, if one)

    @model_validator(mode="after")
    def _consistent(self) -> AgentSpec:
        if (self.run is None) == (self.declarative is None):
            raise FieldError(
                "an agent is either bring-your-own or declarative", expected="exactly one of run, declarative"
            )
        if self.isolation is not None and TIER_ORDER.index(self.isolation) < TIER_ORDER.index(
            MINIMUM_TIER[self.trust]
        ):
            raise FieldError(
                f"trust {self.trust!r} needs isolation {MINIMUM_TIER[self.trust]!r} or stronger",
                at=("isolation",),
                expected=" or ".join(TIER_ORDER[TIER_ORDER.index(MINIMUM_TIER[self.trust]) :]),
            )
        gpu = self.resources.gpu
        if gpu is not None and gpu.share is not None and self.trust != "trusted":
            raise FieldError(
                "a time-sliced GPU share gives no memory isolation: trusted agents only",
                at=("resources", "gpu", "share"),
            )
        for name in self.env:
            if name.upper() in {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} or name.startswith("FLEETPLANE_"):
                raise FieldError(f"env {name!r} is set by fleetplane", at=("env", name))
        return self


@kind
class Agent(Manifest):
    KIND = "Agent"
    kind: Literal["Agent"]
    spec: AgentSpec
