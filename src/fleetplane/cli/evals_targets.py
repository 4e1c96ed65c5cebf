"""Runners for the targets the evals wing cannot call over HTTP by itself: skill versions.

`fleetplane eval run` hands every runner factory a `RunnerEnv` (the open store, the server, the key, the
suite's fleet directory) and the target's name; the factory returns `async run(input) -> output`.
`skill:NAME@VERSION` runs that exact published version from the skill registry (promoted or not, so a
candidate is evaluated before its promotion), with a context whose gateway is the server's, as
`fleetplane skill test` runs a skill's evals. Pipelines run through `evals_pipeline`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetplane.evals.targets import TargetFunction
from fleetplane.store.db import Store


@dataclass(frozen=True)
class RunnerEnv:
    store: Store
    server: str  # the fleetplane server, without /v1
    api_key: str | None
    fleet: Path | None = None  # the manifest directory the suite came from (pipelines defined there)


RunnerFactory = Callable[[RunnerEnv, str], TargetFunction]


class TargetNameError(ValueError):
    pass


def skill_runner(env: RunnerEnv, target: str) -> TargetFunction:
    """`summarize@1.0.0` -> run that version of the skill on each case's input."""
    name, _, version = target.partition("@")
    if not name or not version:
        raise TargetNameError(f"skill target {target!r}: expected NAME@VERSION, e.g. summarize@1.0.0")
    # Imported on use: the skills wing is only loaded when a skill is evaluated.
    from fleetplane.skills.catalog import SkillCatalog
    from fleetplane.skills.errors import SkillError
    from fleetplane.skills.loaded import SkillContext
    from fleetplane.skills.semver import Version

    try:
        Version.parse(version)
    except ValueError as exc:
        raise TargetNameError(f"skill target {target!r}: {exc}, e.g. summarize@1.0.0") from None
    catalog = SkillCatalog(env.store)

    async def check() -> None:
        try:
            await catalog.registry.get(name, version)
        except SkillError as exc:
            raise TargetNameError(f"skill target {target!r}: {exc.message}") from None

    async def run(case_input: Any) -> Any:
        published = await catalog.registry.get(name, version)
        skill = await catalog.load(published.ref)
        call = uuid.uuid4().hex[:16]
        context = SkillContext(
            run_id=f"eval:{call}",
            step_id="case",
            attempt=1,
            idempotency_key=f"eval:{call}:case",
            gateway_url=env.server.rstrip("/") + "/v1",
            gateway_key=env.api_key,
            log=lambda _line: None,
        )
        return await skill.invoke(case_input, context)

    run.check = check  # type: ignore[attr-defined]  # `eval run` asks before the first case
    return run


RUNNERS: dict[str, RunnerFactory] = {"skill": skill_runner}
