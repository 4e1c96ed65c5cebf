"""What every `fleetplane skill` command shares: the command group, its options, and how skill errors
end a command (`reported`). The commands live in `skill_author` (a folder: validate, test, pack, keygen,
sign) and `skill` (the registry: publish, list, show, promote, rollback, lock, outdated, policy)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from fleetplane.cli.common import FAILED, err_console, fail
from fleetplane.skills.errors import SkillError, SkillInvalid

skill_app = typer.Typer(name="skill", help="Skills: validate, test, pack, sign, publish, promote, roll back.",
                        no_args_is_help=True)  # fmt: skip
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


@contextmanager
def reported() -> Iterator[None]:
    """Skill errors end the command with their message: 1 for a refusal, 2 for bad input."""
    try:
        yield
    except SkillInvalid as exc:
        for problem in exc.problems:
            err_console.print(f"error: {problem}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(FAILED) from None
    except SkillError as exc:
        fail(exc.message, code=2 if exc.kind in ("not_found", "invalid_input") else FAILED)
