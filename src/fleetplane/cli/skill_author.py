"""`fleetplane skill` on a folder, before anything is published: `validate` (both files, every problem
at file:line), `test` (its unit tests with pytest, and its own eval suite), `pack` (a deterministic
archive), `keygen` and `sign` (an in-toto statement in a DSSE envelope, ed25519)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from fleetplane.cli.common import FAILED, console, err_console, fail, run
from fleetplane.cli.skill_common import Folder, GatewayKey, GatewayURL, reported, skill_app
from fleetplane.cli.skill_views import show_report
from fleetplane.skills.archive import digest_of
from fleetplane.skills.archive import pack as pack_folder
from fleetplane.skills.errors import SkillError, SkillInvalid
from fleetplane.skills.evalrun import EvalReport, default_context, run_suite
from fleetplane.skills.folder import read_folder
from fleetplane.skills.signing import key_id, load_private_key, sign_folder, write_keypair
from fleetplane.skills.spec import PromptEntry
from fleetplane.skills.trust import add_key, check_can_add
from fleetplane.skills.verify import load_folder


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
    with reported():
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
    with reported():
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
    with reported():
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
    with reported():
        private = load_private_key(key)
        written = sign_folder(folder, private)
    console.print(f"signed {written} with key {key_id(private.public_key())}", markup=False, soft_wrap=True)
