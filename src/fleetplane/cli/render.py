"""`fleetplane render --target kubernetes DIR OUT`, and what `apply --target kubernetes` and
`rollout undo|history --target kubernetes` run: the fleet as Kubernetes objects, linted, applied with
server-side apply, rolled back to the previous revision."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import typer

from fleetplane.cli.common import BAD_INPUT, FAILED, console, err_console, fail
from fleetplane.manifests.desired import DesiredState
from fleetplane.runtime.kubernetes import (
    KubernetesExtraMissing,
    Rendered,
    RenderError,
    RenderOptions,
    lint,
    render_fleet,
    write_objects,
)
from fleetplane.runtime.kubernetes.cluster import ClusterError, transport_error

Target = Literal["kubernetes"]
_NAMESPACE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")

Namespace = Annotated[
    str, typer.Option("--namespace", "-n", help="The Kubernetes namespace the fleet runs in.")
]
Kubeconfig = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        help="A kubeconfig file (default: in-cluster, else $KUBECONFIG, else ~/.kube/config).",
    ),
]
GatewayImage = Annotated[
    str | None,
    typer.Option(
        "--gateway-image",
        envvar="FLEETPLANE_GATEWAY_IMAGE",
        show_envvar=True,
        help="The fleetplane image for the gateway pods, pinned by digest (repo@sha256:...).",
    ),
]
RunnerImage = Annotated[
    str | None,
    typer.Option(
        "--runner-image",
        envvar="FLEETPLANE_RUNNER_IMAGE",
        show_envvar=True,
        help="The image declarative agents run in, pinned by digest (default: the gateway image).",
    ),
]
AgentImages = Annotated[
    list[str] | None,
    typer.Option(
        "--image",
        metavar="AGENT=IMAGE",
        help="AGENT=REPO@sha256:... for an agent's image (over its fleetplane.dev/image annotation); "
        "repeatable.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("render")(render)


def render(
    directory: Annotated[Path, typer.Argument(help="The fleet directory (or one manifest file).")],
    out: Annotated[
        Path,
        typer.Argument(
            help="Where to write: a directory (one YAML file per object) or, with --single-file, a file."
        ),
    ],
    target: Annotated[
        Target, typer.Option("--target", help="What to render for: kubernetes.")
    ] = "kubernetes",
    namespace: Namespace = "fleetplane",
    gateway_image: GatewayImage = None,
    runner_image: RunnerImage = None,
    images: AgentImages = None,
    single_file: Annotated[
        bool, typer.Option("--single-file", help="Write OUT as one multi-document YAML file.")
    ] = False,
) -> None:
    """Render the fleet as Kubernetes objects: per agent a Deployment, Service, autoscaler, NetworkPolicy,
    PodDisruptionBudget and Secrets (without values), the RuntimeClasses its isolation tiers need, and the
    gateway. Nothing is written when an image is not pinned by digest or the lint finds a problem."""
    rendered = render_checked(_load(directory), _options(namespace, gateway_image, runner_image, images))
    try:
        paths = write_objects(rendered.objects, out, single_file=single_file)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}", code=BAD_INPUT)
    where = out if single_file else f"{out}/ ({len(paths)} files)"
    console.print(f"rendered {len(rendered.objects)} objects to {where}", markup=False, soft_wrap=True)
    for agent, revision in sorted(rendered.revisions.items()):
        console.print(f"  Agent/{agent}: revision {revision}", markup=False)


def apply_kubernetes(
    directory: Path,
    *,
    namespace: str,
    kubeconfig: Path | None,
    gateway_image: str | None,
    runner_image: str | None,
    images: list[str] | None,
    redis_url: str | None,
    database_url: str | None,
    prune: bool,
    dry_run: bool,
) -> None:
    """`fleetplane apply --target kubernetes DIR`: render, lint, then server-side apply to the cluster.

    Secret values are read here, at apply time, from where the manifests say they live (an agent's
    secrets, its VirtualKey's secretRef; the gateway's Redis/Postgres URLs from the options)."""
    from fleetplane.runtime.kubernetes.apply import apply_rendered, read_secret_values
    from fleetplane.runtime.kubernetes.cluster import connect

    desired = _load(directory)
    rendered = render_checked(desired, _options(namespace, gateway_image, runner_image, images))
    if dry_run:
        for obj in rendered.objects:
            console.print(f"would apply {obj['kind']}/{obj['metadata']['name']}", markup=False)
        console.print(f"dry run: nothing was applied ({len(rendered.objects)} objects)", markup=False)
        return
    if database_url is not None and database_url.startswith("sqlite"):
        # Gateway replicas share one database; a local SQLite file (often from $FLEETPLANE_DATABASE_URL)
        # is never theirs.
        err_console.print(
            "warning: --database-url is SQLite: not given to the gateway pods", style="yellow", markup=False
        )
        database_url = None
    secrets = read_secret_values(desired, store_urls={"redis-url": redis_url, "database-url": database_url})
    with _cluster_errors():
        client = connect(kubeconfig, namespace)
        try:
            report = apply_rendered(client, rendered, namespace=namespace, secrets=secrets, prune=prune)
        finally:
            client.close()
    for name, reason in sorted(report.skipped.items()):
        err_console.print(
            f"warning: Secret/{name} not written ({reason}); pods that mount it wait for it",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
    for ref in report.pruned:
        console.print(f"pruned {ref}", markup=False)
    console.print(
        f"applied {len(report.applied)} objects to namespace {namespace}", markup=False, soft_wrap=True
    )
    for agent, revision in sorted(rendered.revisions.items()):
        new = " (new)" if agent in report.recorded else ""
        console.print(f"  Agent/{agent}: revision {revision}{new}", markup=False)


def rollout_undo_kubernetes_command(
    agent: str, *, namespace: str, kubeconfig: Path | None, to_revision: str | None = None
) -> None:
    """`fleetplane rollout undo AGENT --target kubernetes [--to-revision R]`: prints, exits on errors."""
    from fleetplane.runtime.kubernetes.rollout import RolloutError, rollout_undo_kubernetes

    with _cluster_errors():
        try:
            result = rollout_undo_kubernetes(
                agent, namespace=namespace, kubeconfig=kubeconfig, to_revision=to_revision
            )
        except RolloutError as exc:
            fail(str(exc), code=FAILED)
    for ref in result.pruned:
        console.print(f"pruned {ref}", markup=False)
    console.print(
        f"Agent/{agent}: rolled back from revision {result.from_revision} to {result.to_revision} "
        f"({len(result.applied)} objects applied)",
        markup=False,
        soft_wrap=True,
    )


def rollout_history_kubernetes_command(agent: str, *, namespace: str, kubeconfig: Path | None) -> None:
    """`fleetplane rollout history AGENT --target kubernetes`: the revisions, oldest first."""
    from fleetplane.runtime.kubernetes.rollout import rollout_history_kubernetes

    with _cluster_errors():
        entries = rollout_history_kubernetes(agent, namespace=namespace, kubeconfig=kubeconfig)
    if not entries:
        fail(f"agent {agent!r} has no revision history in namespace {namespace!r}", code=FAILED)
    for number, entry in enumerate(entries, start=1):
        current = "  (current)" if number == len(entries) else ""
        console.print(f"{number}  {entry.revision}{current}", markup=False)


def render_checked(desired: DesiredState, options: RenderOptions) -> Rendered:
    """Render and lint; any problem ends the command (exit 1) with one line per problem."""
    try:
        rendered = render_fleet(desired, options)
    except RenderError as exc:
        for problem in exc.problems:
            err_console.print(f"error: {problem}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(FAILED) from None
    problems = lint(rendered.objects)
    for lint_problem in problems:
        err_console.print(f"error: {lint_problem}", style="red", markup=False, soft_wrap=True)
    if problems:
        raise typer.Exit(FAILED)
    for warning in rendered.warnings:
        err_console.print(f"warning: {warning}", style="yellow", markup=False, soft_wrap=True)
    return rendered


def _options(
    namespace: str, gateway_image: str | None, runner_image: str | None, images: list[str] | None
) -> RenderOptions:
    if not _NAMESPACE.match(namespace):
        fail(
            f"--namespace {namespace!r} is not a Kubernetes namespace name "
            "(lowercase letters, digits and '-', at most 63, starting with a letter)",
            code=BAD_INPUT,
        )
    agent_images: dict[str, str] = {}
    for entry in images or []:
        agent, sep, image = entry.partition("=")
        if not sep or not agent or not image:
            fail(f"--image {entry!r}: expected AGENT=REPO@sha256:<digest>", code=BAD_INPUT)
        agent_images[agent] = image
    return RenderOptions(
        namespace=namespace,
        gateway_image=gateway_image,
        runner_image=runner_image,
        agent_images=agent_images,
    )


def _load(directory: Path) -> DesiredState:
    from fleetplane.cli.manifests import _load as load_checked  # the same errors as `validate`

    return load_checked(directory)


@contextmanager
def _cluster_errors() -> Iterator[None]:
    """A missing extra, an unusable kubeconfig or an unreachable API server: one line, exit 1."""
    try:
        yield
    except (KubernetesExtraMissing, ClusterError) as exc:
        fail(str(exc), code=FAILED)
    except Exception as exc:
        if isinstance(exc, transport_error()):
            fail(f"cannot reach the Kubernetes API server: {exc}", code=FAILED)
        raise
