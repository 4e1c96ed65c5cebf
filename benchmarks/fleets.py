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


def _model(params: FleetParams, *, cache: str = "off") -> str:
    return f"""\
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata:
  name: {params.model}
spec:
  family: bench
  contextWindow: 128000
  price: {{input: 1.0, output: 2.0}}
  deployments:
    - provider: upstream
      model: {params.model}
  cache:
    mode: {cache}
"""


def passthrough(params: FleetParams, directory: Path) -> None:
    """The example fleet's shape as it is: in-process state, no cache, no quotas."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fleet.yaml").write_text(_base(params))
    (directory / "models.yaml").write_text(_model(params))
