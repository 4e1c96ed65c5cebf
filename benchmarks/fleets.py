"""Fleet directories for the gateway benchmarks: one function per variant, writing manifests to a directory.

Every variant serves one model group whose name is also the upstream model's name, so the very same request
body goes to the simulator directly and through the gateway. The upstream is an `openai-compatible`
Provider pointing at the benchmark's own simulator process (not a `sim` provider, for which `fleetplane up`
would start a second simulator), and the key's secret comes from an environment variable, so the benchmark
knows it without reading `up`'s banner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KEY_ENV = "FLEETPLANE_BENCH_KEY"


@dataclass(frozen=True)
class FleetParams:
    upstream_url: str  # the simulator's OpenAI base URL, ending in /v1
    model: str  # the model group's name and the upstream model's name


FleetVariant = Callable[[FleetParams, Path], None]


def _base(params: FleetParams) -> str:
    return f"""\
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata:
  name: bench
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata:
  name: bench
spec:
  organization: bench
---
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata:
  name: upstream
spec:
  type: openai-compatible
  baseURL: {params.upstream_url}
  maxConnections: 1000
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata:
  name: bench
spec:
  team: bench
  agent: load
  models: [{params.model}]
  secretRef: {{env: {KEY_ENV}}}
"""


def _model(params: FleetParams, *, cache: str = "off", fallback: bool = False, max_output: int = 4096) -> str:
    # With `fallback`, a second step on another Provider (the same simulator under another name): a
    # two-step chain whose second step is never needed while the first is healthy.
    second = f"\n    - {{provider: fallback, model: {params.model}, step: 1}}" if fallback else ""
    steps = ", step: 0" if fallback else ""
    return f"""\
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata:
  name: {params.model}
spec:
  family: bench
  contextWindow: 128000
  maxOutputTokens: {max_output}
  price: {{input: 1.0, output: 2.0}}
  deployments:
    - {{provider: upstream, model: {params.model}{steps}}}{second}
  cache:
    mode: {cache}
"""


def _fallback_provider(params: FleetParams) -> str:
    return f"""\
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata:
  name: fallback
spec:
  type: openai-compatible
  baseURL: {params.upstream_url}
  maxConnections: 1000
"""


def _quota(name: str, target: str, limits: str, extra: str = "") -> str:
    return f"""\
apiVersion: fleetplane.dev/v1alpha1
kind: Quota
metadata:
  name: {name}
spec:
  target: {target}
  limits: {limits}
{extra}"""


def passthrough(params: FleetParams, directory: Path) -> None:
    """The example fleet's shape as it is: in-process state, no cache, no quotas."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fleet.yaml").write_text(_base(params))
    (directory / "models.yaml").write_text(_model(params))


# Generous on purpose: at 200 req/s of ~350 tokens (~$0.00045 each) nothing comes near them, so every
# request is admitted and charged on every limit, and no breaker ever trips.
_NEVER = "100000000"


def _layered_quotas(model: str) -> str:
    return "---\n".join(
        [
            _quota("team-budget", "{team: bench}", f"{{tpm: {_NEVER}, rpm: 1000000}}"),
            _quota("each-agent", '{agent: "*"}', f"{{tpm: {_NEVER}, concurrent: 10000, usdPerDay: 1000000}}"),
            _quota("model-budget", f"{{model: {model}}}", f"{{tpm: {_NEVER}, rpm: 1000000}}"),
            _quota("key-budget", "{key: bench}", f"{{tpm: {_NEVER}, rpm: 1000000, usdPerMonth: 1000000}}"),
        ]
    )


LAYERED_BREAKERS = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Breaker
metadata:
  name: agent-guard
spec:
  target: {agent: "*"}
  repeats: {count: 5, window: 1m}            # every body differs in the benchmark: never a 6th repeat
  costVelocity: {usdPerMinute: 100000}
  contextGrowth: {maxInputTokens: 100000, maxGrowthPerTurn: 30000}
  openFor: 30s
---
apiVersion: fleetplane.dev/v1alpha1
kind: Breaker
metadata:
  name: upstream-errors
spec:
  target: {deployment: upstream/MODEL}
  errorRate: {threshold: 0.5, minRequests: 20, window: 1m}
  openFor: 30s
"""


def layered(params: FleetParams, directory: Path) -> None:
    """L1 + L2 + L3 on every request: four Quota rules (team, each agent, model, key: 10 limits, strict
    reservations), an agent breaker (repeats, cost velocity, context growth) and a deployment breaker
    (error rate), and a two-step fallback chain. Nothing is ever denied and no breaker trips."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fleet.yaml").write_text(_base(params) + "---\n" + _fallback_provider(params))
    (directory / "models.yaml").write_text(_model(params, fallback=True))
    (directory / "quotas.yaml").write_text(_layered_quotas(params.model))
    (directory / "breakers.yaml").write_text(LAYERED_BREAKERS.replace("MODEL", params.model))


def tpm_limited(
    params: FleetParams,
    directory: Path,
    *,
    tpm: int,
    reservation: str,
    max_output: int,
    warm_key_env: str,
) -> None:
    """One small tokens-per-minute budget on the benchmark key (with a generous concurrency limit, so
    its counter of open reservations is there to be read), and a second key of the same agent, outside
    that budget, whose traffic teaches `adaptive` reservations what outputs look like."""
    directory.mkdir(parents=True, exist_ok=True)
    warm = f"""\
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata:
  name: warm
spec:
  team: bench
  agent: load
  models: [{params.model}]
  secretRef: {{env: {warm_key_env}}}
"""
    (directory / "fleet.yaml").write_text(_base(params) + "---\n" + warm)
    (directory / "models.yaml").write_text(_model(params, max_output=max_output))
    limits = f"{{tpm: {tpm}, concurrent: 100000}}"
    budget = _quota("burst", "{key: bench}", limits, f"  reservation: {reservation}\n")
    (directory / "quotas.yaml").write_text(budget)
