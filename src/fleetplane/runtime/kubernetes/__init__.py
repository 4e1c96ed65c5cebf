"""The Kubernetes backend: the same fleet, rendered as Kubernetes objects and applied to a cluster.

`render_fleet` turns the Agents of a directory into Deployments, Services, autoscalers, network
policies, runtime classes, disruption budgets and Secrets (plus the gateway itself); `lint` checks what
schema validation misses; `apply_rendered` server-side applies them with lightkube and records each
agent's revision in the cluster; `rollout_undo` applies the previous revision again.

Rendering and lint need nothing beyond the base install; applying needs the `kubernetes` extra
(`pip install 'fleetplane[kubernetes]'`), imported only when used. Imports the ground floor
(manifests) and, inside this wing, `fleetplane.runtime.specs` for the agent's own environment.
"""

from fleetplane.runtime.kubernetes.deps import KubernetesExtraMissing
from fleetplane.runtime.kubernetes.lint import LintProblem, lint
from fleetplane.runtime.kubernetes.options import RenderOptions
from fleetplane.runtime.kubernetes.render import Rendered, RenderError, render_fleet, write_objects

__all__ = [
    "KubernetesExtraMissing",
    "LintProblem",
    "RenderError",
    "RenderOptions",
    "Rendered",
    "lint",
    "render_fleet",
    "write_objects",
]
