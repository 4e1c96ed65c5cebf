"""`fleetplane skill`: author, sign, publish and serve skills.

Authoring works on a folder: `validate`, `test` (the skill's unit tests and its eval suite), `pack`,
`keygen`, `sign`. The registry works on the store and `$FLEETPLANE_HOME/skills/`: `publish`, `list`,
`show`, `promote` (through the eval gate; `--canary N` for a share of runs), `rollback`, `lock`,
`outdated` and `policy` (the signing policy). Every registry change is in the audit log.
"""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from fleetplane.cli import skill_author  # noqa: F401  (importing it adds the folder commands, listed first)
from fleetplane.cli.common import DatabaseURL, console, fail, with_store
from fleetplane.cli.evals_skillgate import StatisticalSkillGate
from fleetplane.cli.skill_common import Actor, GatewayKey, GatewayURL, LockFile, Trust, reported, skill_app
from fleetplane.cli.skill_views import show_channel_table, show_outdated, show_version
from fleetplane.skills.catalog import SkillCatalog, default_trust
from fleetplane.skills.errors import SkillError
from fleetplane.skills.evalrun import EvalReport, default_context
from fleetplane.skills.gate import EvalGate
from fleetplane.skills.lock import DEFAULT_FILE, SkillLock
from fleetplane.skills.outdated import outdated as find_outdated
from fleetplane.skills.registry import SkillRegistry
from fleetplane.skills.semver import CONSTRAINT_EXPECTED, Constraint, Version
from fleetplane.skills.trust import TrustPolicy
from fleetplane.store.db import Store
from fleetplane.store.url import home

T = TypeVar("T")

# The gate `promote` asks (an `EvalGate` factory): the evals wing's statistical gate refuses a version on
# its own threshold or on a regression against the serving version that is real (paired by case, exact
# McNemar), not on noise between two means.
gate_factory: Callable[[], EvalGate] = StatisticalSkillGate


def register(app: typer.Typer) -> None:
    app.add_typer(skill_app, name="skill")


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _trust(path: Path | None) -> TrustPolicy | None:
    with reported():
        return TrustPolicy.load(path) if path is not None else default_trust(home())


def _on_registry(
    database_url: str | None, trust: Path | None, work: Callable[[SkillRegistry], Awaitable[T]]
) -> T:
    policy = _trust(trust)

    async def main(store: Store) -> T:
        with reported():
            return await work(SkillRegistry(store, trust=policy))
        raise AssertionError("unreachable")

    return with_store(database_url, main)


def _split(ref: str) -> tuple[str, str | None]:
    name, _, version = ref.partition("@")
    return name, version or None


def _exact(ref: str) -> tuple[str, str | None]:
    """NAME or NAME@VERSION with VERSION a semantic version; anything else ends the command (exit 2)."""
    name, version = _split(ref)
    if version is not None:
        try:
            Version.parse(version)
        except ValueError as exc:
            fail(f"{ref}: {exc}, e.g. {name}@1.2.0")
    return name, version


@skill_app.command("publish")
def publish(
    source: Annotated[Path, typer.Argument(help="A skill folder or a packed .tar.gz.")],
    trust: Trust = None,
    actor: Actor = None,
    gateway_url: GatewayURL = None,
    gateway_key: GatewayKey = None,
    database_url: DatabaseURL = None,
) -> None:
    """Verify and publish a skill version, then score its eval suite (recorded for promote and outdated)."""

    async def work(registry: SkillRegistry) -> tuple[str, str, str | None, EvalReport | None]:
        published = await registry.publish(source, actor=_actor(actor))
        skill = await registry.load(published.ref)
        report = None
        if skill.contract.model is None or gateway_url:
            report = await registry.evaluate(skill, default_context(gateway_url, gateway_key))
        return str(published.ref), published.ref.digest, published.signer, report

    name, digest, signer, report = _on_registry(database_url, trust, work)
    console.print(
        f"published {name} {digest} ({'signed by ' + signer if signer else 'unsigned'})",
        markup=False,
        soft_wrap=True,
    )
    if report is not None:
        below = "" if report.passed else "; below its threshold, so `skill promote` will refuse it"
        console.print(
            f"eval score {report.score:.2f} (threshold {report.threshold:.2f}){below}",
            markup=False,
            soft_wrap=True,
        )


@skill_app.command("list")
def list_skills(trust: Trust = None, database_url: DatabaseURL = None) -> None:
    """Published versions: digest, signer, eval score, and which serves (stable, canary)."""

    async def work(registry: SkillRegistry) -> None:
        show_channel_table(await registry.versions(), await registry.channels())

    _on_registry(database_url, trust, work)


@skill_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: the serving version).")],
    trust: Trust = None,
    database_url: DatabaseURL = None,
) -> None:
    """One version's contract, files, signer and evals, and the skill's serving channel and history."""
    name, version = _exact(ref)

    async def work(registry: SkillRegistry) -> None:
        channel = await registry.channel(name)
        chosen = version or (channel.version if channel else None)
        if chosen is None:
            versions = await registry.versions(name)
            if not versions:
                raise SkillError("not_found", f"no version of skill {name} is published")
            chosen = versions[0].version
        published = await registry.get(name, chosen)
        show_version(published, channel, await registry.history(name))

    _on_registry(database_url, trust, work)


@skill_app.command("promote")
def promote(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to serve.")],
    canary: Annotated[
        int | None, typer.Option("--canary", help="Serve it to this percent of runs (1-99) only.")
    ] = None,
    trust: Trust = None,
    actor: Actor = None,
    gateway_url: GatewayURL = None,
    gateway_key: GatewayKey = None,
    database_url: DatabaseURL = None,
) -> None:
    """Serve a version (to all runs, or a canary share by run id) once its eval suite passes the gate."""
    name, version = _exact(ref)
    if version is None:
        fail(f"give the version to promote as NAME@VERSION, e.g. {name}@1.2.0")
    if canary is not None and not 1 <= canary <= 99:
        fail(f"--canary {canary}: a canary is 1 to 99 percent of runs")

    async def work(registry: SkillRegistry) -> str:
        done = await registry.promote(
            name, version, actor=_actor(actor), canary=canary, gate=gate_factory(),
            context=default_context(gateway_url, gateway_key),
        )  # fmt: skip
        share = f"{canary}% of runs" if canary else "all runs"
        return f"{name}@{version} serves {share} ({done.decision.reason})"

    console.print(_on_registry(database_url, trust, work), markup=False, soft_wrap=True)


@skill_app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="The skill.")],
    trust: Trust = None,
    actor: Actor = None,
    database_url: DatabaseURL = None,
) -> None:
    """End a canary, or serve the version before the last promotion again."""

    async def work(registry: SkillRegistry) -> str:
        channel = await registry.rollback(name, actor=_actor(actor))
        return f"{name}@{channel.version} serves all runs"

    console.print(_on_registry(database_url, trust, work), markup=False, soft_wrap=True)


@skill_app.command("lock")
def lock(
    refs: Annotated[list[str], typer.Argument(help="NAME@CONSTRAINT for each skill, e.g. summarize@^1.0.")],
    lock_file: LockFile = Path(DEFAULT_FILE),
    trust: Trust = None,
    database_url: DatabaseURL = None,
) -> None:
    """Pin each skill to the exact version and digest it resolves to now, in a lock file."""
    wanted = dict(_split(r) for r in refs)
    for name, constraint in wanted.items():
        try:
            Constraint.parse(constraint or "*")
        except ValueError:
            fail(f"{name}@{constraint}: {constraint!r} is not {CONSTRAINT_EXPECTED}")
    previous = None
    if lock_file.is_file():
        with reported():
            previous = SkillLock.load(lock_file)

    async def work(store: Store) -> SkillLock:
        with reported():
            catalog = SkillCatalog(store, trust=_trust(trust))
            return await catalog.lock({n: c or "*" for n, c in wanted.items()}, previous=previous)
        raise AssertionError("unreachable")

    made = with_store(database_url, work)
    made.write(lock_file)
    for name, entry in made.entries.items():
        console.print(
            f"{name} {entry.constraint} -> {entry.ref.version} {entry.ref.digest}",
            markup=False,
            soft_wrap=True,
        )


@skill_app.command("outdated")
def outdated(
    lock_file: LockFile = Path(DEFAULT_FILE), trust: Trust = None, database_url: DatabaseURL = None
) -> None:
    """Newer published versions the lock's constraints allow, with eval delta and new permissions flagged."""
    with reported():
        pinned = SkillLock.load(lock_file)

    async def work(registry: SkillRegistry) -> None:
        show_outdated(await find_outdated(registry, pinned))

    _on_registry(database_url, trust, work)


@skill_app.command("policy")
def policy(
    require_signed: Annotated[
        bool | None, typer.Option("--require-signed/--allow-unsigned", help="Set the signing policy.")
    ] = None,
    actor: Actor = None,
    database_url: DatabaseURL = None,
) -> None:
    """Show or set the signing policy (--require-signed: unsigned skills are refused at publish and load)."""

    async def work(registry: SkillRegistry) -> str:
        if require_signed is not None:
            changed = await registry.set_require_signed(require_signed, actor=_actor(actor))
            state = "required" if require_signed else "not required"
            return f"signing is {state}" + ("" if changed else " (unchanged)")
        return "signing is " + ("required" if await registry.require_signed() else "not required")

    console.print(_on_registry(database_url, None, work), markup=False, soft_wrap=True)
