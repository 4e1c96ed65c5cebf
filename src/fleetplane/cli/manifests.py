"""`fleetplane validate`, `apply` and `get`: the desired state from a directory, and what is applied."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fleetplane.cli.admin_client import DEFAULT_SERVER, ServerURL
from fleetplane.cli.common import FAILED, DatabaseURL, console, fail, format_time, now, with_store
from fleetplane.cli.live import show_quotas
from fleetplane.cli.render import (
    AgentImages,
    GatewayImage,
    Kubeconfig,
    Namespace,
    RunnerImage,
    apply_kubernetes,
)
from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.errors import ManifestError, ManifestErrors
from fleetplane.manifests.kinds import KINDS
from fleetplane.manifests.loader import load
from fleetplane.manifests.plan import Change, Plan
from fleetplane.store.applied import AppliedDocument, AppliedRepository
from fleetplane.store.db import Store
from fleetplane.store.desired import ApplyError, ApplyResult, apply_desired

PathArgument = Annotated[
    Path, typer.Argument(help="A manifest file, or a directory read recursively (*.yaml, *.yml).")
]
Output = Literal["table", "yaml", "json"]

_ACTION_STYLE = {"create": "green", "update": "yellow", "delete": "red", "unchanged": "dim"}


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("apply")(apply)
    app.command("get")(get)


def validate(path: PathArgument) -> None:
    """Check every manifest under PATH: each error with its file:line:column; exit 1 on any."""
    desired = _load(path)
    counts = ", ".join(f"{n} {kind}" for kind, n in desired.counts().items()) or "no manifests"
    files = len({desired.origin(m).file for m in desired})
    summary = f"valid: {counts} ({_plural(len(desired), 'document')} in {_plural(files, 'file')})"
    console.print(summary, markup=False, soft_wrap=True)
    _print_skipped(desired)


def apply(
    path: PathArgument,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; write nothing.")] = False,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune/--no-prune",
            help="Delete applied documents that are no longer under PATH (the default), or keep them.",
        ),
    ] = True,
    database_url: DatabaseURL = None,
    target: Annotated[
        Literal["local", "kubernetes"],
        typer.Option(
            "--target",
            metavar="TARGET",
            help="local: the store `fleetplane up` serves; kubernetes: server-side apply to a cluster "
            "(docs/kubernetes.md; --database-url and --redis-url are then the gateway pods' own).",
        ),
    ] = "local",
    kubeconfig: Kubeconfig = None,
    namespace: Namespace = "fleetplane",
    gateway_image: GatewayImage = None,
    runner_image: RunnerImage = None,
    images: AgentImages = None,
    redis_url: Annotated[
        str | None,
        typer.Option("--redis-url", help="With --target kubernetes: the Redis URL the gateway pods share."),
    ] = None,
) -> None:
    """Make the store match the manifests under PATH: show the plan, then apply it in one transaction.

    New VirtualKeys without a secretRef get a minted secret, shown once. Nothing is written when any
    manifest is invalid or a key secret cannot be read. With --target kubernetes the fleet is rendered,
    linted and server-side applied to the cluster instead.
    """
    if target == "kubernetes":
        apply_kubernetes(
            path,
            namespace=namespace,
            kubeconfig=kubeconfig,
            gateway_image=gateway_image,
            runner_image=runner_image,
            images=images,
            redis_url=redis_url,
            database_url=database_url,
            prune=prune,
            dry_run=dry_run,
        )
        return
    desired = _load(path)
    if len(desired) == 0:
        fail(f"found no manifests under {path}: nothing to apply", code=FAILED)

    async def work(store: Store) -> ApplyResult:
        return await apply_desired(store, desired, now=now(), prune=prune, dry_run=dry_run)

    try:
        result = with_store(database_url, work)
    except ApplyError as exc:
        for problem in exc.problems:
            console.print(f"error: {problem}", style="red", markup=False, soft_wrap=True)
        console.print("nothing was applied", markup=False)
        raise typer.Exit(FAILED) from None
    _print_plan(result.plan)
    _print_outcome(result)


def get(
    kind: Annotated[
        str, typer.Argument(help="A kind, any case, singular or plural: models, provider, teams ...")
    ],
    name: Annotated[
        str | None, typer.Argument(help="One document's name; all of the kind without it.")
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="table, yaml or json.")] = "table",
    database_url: DatabaseURL = None,
    server: ServerURL = DEFAULT_SERVER,
) -> None:
    """Show what is applied in the store (not what is in a directory). `get quotas` shows each quota's
    live counters (limit, used, reserved, schedule in force) from the running server."""
    wanted = resolve_kind(kind)
    if wanted == "Quota" and name is None and output in ("table", "json"):
        if show_quotas(server, output):
            return
        console.print(f"(no server answers at {server}: the applied Quota documents, without counters)")

    async def work(store: Store) -> dict[tuple[str, str], AppliedDocument]:
        return await AppliedRepository(store).all()

    docs = sorted(
        (d for d in with_store(database_url, work).values() if d.kind == wanted), key=lambda d: d.name
    )
    if name is not None:
        docs = [d for d in docs if d.name == name]
        if not docs:
            fail(f"{wanted}/{name} is not applied", code=FAILED)
    # Machine-readable output goes out untouched by rich (no wrapping, markup or emoji codes).
    if output == "json":
        payload: Any = docs[0].document if name is not None else [d.document for d in docs]
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    elif output == "yaml":
        typer.echo(
            yaml.safe_dump_all([d.document for d in docs], sort_keys=False, allow_unicode=True), nl=False
        )
    elif not docs:
        console.print(f"no {wanted} is applied", markup=False)
    else:
        console.print(_applied_table(wanted, docs))


def resolve_kind(text: str) -> str:
    """'models', 'Model', 'virtual-keys' -> the kind's name; an unknown one ends the command."""
    plain = text.lower().replace("-", "").replace("_", "")
    for kind in KINDS:
        if plain in (kind.lower(), kind.lower() + "s"):
            return kind
    fail(f"unknown kind '{text}'; known kinds: {', '.join(sorted(KINDS))}")


def _load(path: Path) -> DesiredState:
    try:
        return load(path)
    except FileNotFoundError:
        fail(f"no such file or directory: {path}")
    except ManifestErrors as exc:
        _print_errors(exc)
        raise typer.Exit(FAILED) from None


def _print_errors(exc: ManifestErrors) -> None:
    groups = exc.by_file()
    for index, errors in enumerate(groups.values()):
        if index:
            console.print()
        for error in errors:
            console.print(_error_line(error), soft_wrap=True)
    console.print(
        f"\n{_plural(len(exc.errors), 'error')} in {_plural(len(groups), 'file')}",
        style="bold red",
        markup=False,
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _error_line(error: ManifestError) -> Text:
    return Text.assemble((error.location, "bold"), ": ", (error.message, ""))


def _print_skipped(desired: DesiredState) -> None:
    by_file = Counter(s.file for s in desired.skipped)
    reasons = {s.file: s.reason for s in desired.skipped}
    for file, count in by_file.items():
        several = f" ({count} documents)" if count > 1 else ""
        console.print(f"skipped {file}{several}: {reasons[file]}", style="dim", markup=False)


def _print_plan(plan: Plan) -> None:
    table = Table(title="Plan", title_justify="left")
    for column in ("ACTION", "KIND/NAME", "SOURCE", "CHANGES"):
        table.add_column(column)
    for change in plan.changes:
        style = _ACTION_STYLE[change.action]
        table.add_row(Text(change.action, style), change.ref, change.source or "-", _change_summary(change))
    for ref in plan.kept:
        table.add_row(Text("keep", "cyan"), ref, "-", "not under the path; kept (--no-prune)")
    console.print(table)
    for change in plan.of("update"):
        console.print()
        for line in change.unified_diff():
            console.print(Text(line, _diff_style(line)), soft_wrap=True)


def _change_summary(change: Change) -> str:
    if change.action == "update":
        n = len(change.fields)
        return (
            f"{n} field{'s' if n != 1 else ''}: "
            + ", ".join(f.path for f in change.fields[:3])
            + (", ..." if n > 3 else "")
        )
    return ""


def _diff_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "bold"
    if line.startswith("@@"):
        return "cyan"
    return {"+": "green", "-": "red"}.get(line[:1], "")


def _print_outcome(result: ApplyResult) -> None:
    counts = result.plan.counts()
    tally = ", ".join(f"{action} {n}" for action, n in counts.items())
    if result.dry_run:
        console.print(f"dry run: nothing was written ({tally})", markup=False)
    elif not result.written:
        console.print(f"no changes: generation {result.generation} stays ({tally})", markup=False)
    else:
        console.print(f"applied: generation {result.generation} ({tally})", markup=False)
    if result.minted:
        lines = Text()
        for minted in result.minted:
            lines.append(f"VirtualKey/{minted.key}: ", "bold")
            lines.append(minted.secret + "\n")
        lines.append("These secrets will not be shown again: store them now.", "bold yellow")
        console.print(Panel(lines, title="New key secrets (shown once)", border_style="yellow"))


def _applied_table(kind: str, docs: list[AppliedDocument]) -> Table:
    table = Table(title=kind, title_justify="left")
    for column in ("NAME", "SPEC", "SOURCE", "GENERATION", "APPLIED"):
        table.add_column(column)
    describe = _DESCRIBE.get(kind, _describe_scalars)
    for d in docs:
        spec = d.document.get("spec") or {}
        table.add_row(d.name, describe(spec), d.source or "-", str(d.generation), format_time(d.applied_at))
    return table


def _describe_scalars(spec: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in spec.items() if isinstance(v, str | int | float) and v is not None)


def _describe_model(spec: dict[str, Any]) -> str:
    chain = ", ".join(f"{d['provider']}/{d['model']}" for d in spec.get("deployments", []))
    aliases = f" aliases={','.join(spec['aliases'])}" if spec.get("aliases") else ""
    return f"family={spec.get('family')} deployments={chain}{aliases}"


def _describe_key(spec: dict[str, Any]) -> str:
    who = [f"{k}={spec[k]}" for k in ("team", "user", "customer", "agent") if spec.get(k)]
    return " ".join([*who, f"models={','.join(spec.get('models', []))}"])


def _describe_provider(spec: dict[str, Any]) -> str:
    return f"type={spec.get('type')}" + (f" baseURL={spec['baseURL']}" if spec.get("baseURL") else "")


_DESCRIBE: dict[str, Callable[[dict[str, Any]], str]] = {
    "Model": _describe_model,
    "VirtualKey": _describe_key,
    "Provider": _describe_provider,
}
