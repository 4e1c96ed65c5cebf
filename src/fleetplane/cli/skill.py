"""`fleetplane skill`: author, sign, publish and serve skills.

Authoring works on a folder: `validate`, `test` (the skill's unit tests and its eval suite), `pack`,
`keygen`, `sign`. The registry works on the store and `$FLEETPLANE_HOME/skills/`: `publish`, `list`,
`show`, `promote` (through the eval gate; `--canary N` for a share of runs), `rollback`, `lock`,
`outdated` and `policy` (the signing policy). Every registry change is in the audit log.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from fleetplane.cli.common import FAILED, DatabaseURL, console, err_console, fail, run, with_store
from fleetplane.cli.evals_skillgate import StatisticalSkillGate
from fleetplane.cli.skill_views import show_channel_table, show_outdated, show_report, show_version
from fleetplane.skills.archive import digest_of
from fleetplane.skills.archive import pack as pack_folder
from fleetplane.skills.catalog import SkillCatalog, default_trust
from fleetplane.skills.errors import SkillError, SkillInvalid
from fleetplane.skills.evalrun import EvalReport, default_context, run_suite
from fleetplane.skills.folder import read_folder
from fleetplane.skills.gate import EvalGate
from fleetplane.skills.lock import DEFAULT_FILE, SkillLock
from fleetplane.skills.outdated import outdated as find_outdated
from fleetplane.skills.registry import SkillRegistry
from fleetplane.skills.signing import key_id, load_private_key, sign_folder, write_keypair
from fleetplane.skills.spec import PromptEntry
from fleetplane.skills.trust import TrustPolicy, add_key, check_can_add
from fleetplane.skills.verify import load_folder
from fleetplane.store.db import Store
from fleetplane.store.url import home

T = TypeVar("T")

skill_app = typer.Typer(name="skill", help="Skills: validate, test, pack, sign, publish, promote, roll back.",
                        no_args_is_help=True)  # fmt: skip

# The gate `promote` asks. The evals wing's statistical gate replaces this factory (an `EvalGate`).
# The evals wing's statistical gate: a version is refused on its own threshold or on a regression against
# the serving version that is real (paired by case, exact McNemar), not on noise between two means.
gate_factory: Callable[[], EvalGate] = StatisticalSkillGate

Folder = Annotated[Path, typer.Argument(help="A skill folder (SKILL.md and skill.yaml).")]
Trust = Annotated[
    Path | None,
    typer.Option("--trust", envvar="FLEETPLANE_SKILL_TRUST", show_envvar=True,
                 help="The trust file: keys, the skills each may sign, revocations "
                 "(default: $FLEETPLANE_HOME/skills/trust.yaml if present)."),
]  # fmt: skip
Actor = Annotated[
    str | None, typer.Option("--actor", help="Who does this, for the audit log (default: $USER).")
]
GatewayURL = Annotated[
    str | None,
    typer.Option("--gateway-url", envvar="FLEETPLANE_GATEWAY_URL", show_envvar=True,
                 help="The gateway's OpenAI base URL, for prompt skills' evals (e.g. http://127.0.0.1:8700/v1)."),
]  # fmt: skip
GatewayKey = Annotated[
    str | None,
    typer.Option("--gateway-key", envvar="FLEETPLANE_GATEWAY_KEY", show_envvar=True,
                 help="A virtual key for the gateway."),
]  # fmt: skip
LockFile = Annotated[Path, typer.Option("--lock", help="The lock file.")]


def register(app: typer.Typer) -> None:
    app.add_typer(skill_app, name="skill")


@contextmanager
def _reported() -> Iterator[None]:
    """Skill errors end the command with their message: 1 for a refusal, 2 for bad input."""
    try:
        yield
    except SkillInvalid as exc:
        for problem in exc.problems:
            err_console.print(f"error: {problem}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(FAILED) from None
    except SkillError as exc:
        fail(exc.message, code=2 if exc.kind in ("not_found", "invalid_input") else FAILED)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _trust(path: Path | None) -> TrustPolicy | None:
    with _reported():
        return TrustPolicy.load(path) if path is not None else default_trust(home())


def _on_registry(
    database_url: str | None, trust: Path | None, work: Callable[[SkillRegistry], Awaitable[T]]
) -> T:
    policy = _trust(trust)

    async def main(store: Store) -> T:
        with _reported():
            return await work(SkillRegistry(store, trust=policy))
        raise AssertionError("unreachable")

    return with_store(database_url, main)


def _split(ref: str) -> tuple[str, str | None]:
    name, _, version = ref.partition("@")
    return name, version or None


@skill_app.command("validate")
def validate(folders: Annotated[list[Path], typer.Argument(help="Skill folders.")]) -> None:
    """Check skill folders (SKILL.md by the Agent Skills rules, skill.yaml, evals); problems at file:line."""
    bad = 0
    for path in folders:
        try:
            folder = read_folder(path)
        except SkillInvalid as exc:
            bad += 1
            for problem in exc.problems:
                err_console.print(f"error: {problem}", style="red", markup=False, soft_wrap=True)
            continue
        except SkillError as exc:
            fail(exc.message)
        console.print(
            f"ok {folder.name}@{folder.version}: {len(folder.evals)} eval cases, "
            f"{len(folder.tests)} test files",
            markup=False,
            soft_wrap=True,
        )
    if bad:
        raise typer.Exit(FAILED)


@skill_app.command("test")
def test(folder: Folder, gateway_url: GatewayURL = None, gateway_key: GatewayKey = None) -> None:
    """Run a skill's unit tests (tests/, with pytest) and score its eval suite (evals/)."""
    with _reported():
        skill = load_folder(folder)
    checked = read_folder(folder)
    failed = False
    if checked.tests:
        failed = _unit_tests(checked.path) != 0
    else:
        console.print("no unit tests (tests/test_*.py)", markup=False, soft_wrap=True)
    if isinstance(skill.entrypoint, PromptEntry) and not gateway_url:
        console.print("evals skipped: a prompt skill needs --gateway-url", markup=False, soft_wrap=True)
        raise typer.Exit(FAILED if failed else 0)
    report: EvalReport = run(run_suite(skill, skill.evals, default_context(gateway_url, gateway_key)))
    show_report(report)
    if failed or not report.passed:
        raise typer.Exit(FAILED)


def _unit_tests(folder: Path) -> int:
    # In the skill's folder, so `from scripts.x import y` works; with an empty config so that no
    # enclosing project's pytest settings apply.
    with tempfile.TemporaryDirectory() as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ini),
                   "--rootdir", str(folder), "--confcutdir", str(folder), "tests"]  # fmt: skip
        # No third-party plugins: a skill's tests need plain pytest, and a plugin may fail to import.
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        return subprocess.run(command, cwd=folder, env=env, check=False).returncode


@skill_app.command("pack")
def pack(
    folder: Folder,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write (default: NAME-VERSION.tar.gz).")
    ] = None,
) -> None:
    """Pack a skill folder into a deterministic archive (the same bytes every time); print its digest."""
    with _reported():
        checked = read_folder(folder)
        data = pack_folder(checked.path)
    target = out or Path(f"{checked.name}-{checked.version}.tar.gz")
    target.write_bytes(data)
    console.print(f"{target} {digest_of(data)} ({len(data)} bytes)", markup=False, soft_wrap=True)


@skill_app.command("keygen")
def keygen(
    path: Annotated[
        Path, typer.Argument(help="Where to write the private key (PEM); the public one: PATH.pub.")
    ],
    trust: Annotated[
        Path | None,
        typer.Option("--trust", help="Also list the new key in this trust file (made if missing)."),
    ] = None,
    skills: Annotated[
        str, typer.Option("--skills", help="Comma-separated skill name patterns it may sign.")
    ] = "*",
    name: Annotated[
        str | None, typer.Option("--name", help="Its name in the trust file (default: PATH's stem).")
    ] = None,
) -> None:
    """Make an ed25519 signing key; print its public key line, and add it to a trust file if asked."""
    patterns = [p.strip() for p in skills.split(",") if p.strip()]
    if not patterns:
        fail("--skills: give at least one skill name pattern, e.g. --skills 'support-*'")
    with _reported():
        if trust is not None:
            check_can_add(trust, name or path.stem)  # before the key is made, so a refusal leaves nothing
        public = write_keypair(path)
        if trust is not None:
            add_key(trust, name or path.stem, public, patterns)
    console.print(public, markup=False, soft_wrap=True)
    if trust is not None:
        added = f"added key '{name or path.stem}' to {trust} (may sign: {', '.join(patterns)})"
        console.print(added, markup=False, soft_wrap=True)


@skill_app.command("sign")
def sign(
    folder: Folder,
    key: Annotated[Path, typer.Option("--key", envvar="FLEETPLANE_SKILL_KEY", help="The private key (PEM).")],
) -> None:
    """Sign a skill folder: an in-toto statement of each file's sha256, in a DSSE envelope (ed25519)."""
    with _reported():
        private = load_private_key(key)
        written = sign_folder(folder, private)
    console.print(f"signed {written} with key {key_id(private.public_key())}", markup=False, soft_wrap=True)


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
        console.print(
            f"eval score {report.score:.2f} (threshold {report.threshold:.2f})", markup=False, soft_wrap=True
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
    name, version = _split(ref)

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
    name, version = _split(ref)
    if version is None:
        fail(f"give the version to promote as NAME@VERSION, e.g. {name}@1.2.0")

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
    previous = None
    if lock_file.is_file():
        with _reported():
            previous = SkillLock.load(lock_file)

    async def work(store: Store) -> SkillLock:
        with _reported():
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
    with _reported():
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
