"""What `fleetplane eval` runs a suite against: `pick_target` turns the suite's target (or `--target
model:NAME`, `agent:NAME`, `skill:NAME@VERSION`, `pipeline:NAME`) into a `Target`, checking the name
first (`preflight`), so a wrong one is one line and exit 2 rather than a run of failed cases.

Model and agent targets are called over HTTP; for the others a runner is needed: skill versions are built
in here, pipelines are added by `evals_pipeline`.

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

import httpx

from fleetplane.cli.common import fail
from fleetplane.evals.suites import LoadedSuite
from fleetplane.evals.targets import AgentTarget, CallableTarget, ChatTarget, Price, Target, TargetFunction
from fleetplane.manifests.model import Model
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

# kind ("skill", "pipeline") -> factory(env, target name) -> async run(input) -> output. Skills are built in;
# `evals_pipeline.register` adds pipelines when the CLI registers its groups.
TARGET_RUNNERS: dict[str, RunnerFactory] = dict(RUNNERS)


def _prices(suite: LoadedSuite, model: str) -> tuple[Price | None, dict[str, Price]]:
    """The group's price and each deployment's own, from the Model manifest (as the ledger charges)."""
    manifest = suite.state.get(Model, model)
    if manifest is None:
        return None, {}
    group = manifest.spec.price
    own = {
        f"{d.provider}/{d.model}": Price(d.price.input, d.price.output)
        for d in manifest.spec.deployments
        if d.price
    }
    return (Price(group.input, group.output) if group else None), own


def pick_target(
    suite: LoadedSuite, override: str | None, client: httpx.AsyncClient, env: RunnerEnv | None = None
) -> Target:
    """The target to run: model and agent targets need only `client`; skill and pipeline runners `env`."""
    spec = suite.manifest.spec.target
    if override:
        kind, _, name = override.partition(":") if ":" in override else ("model", "", override)
    else:
        kind, name = spec.kind, spec.name
    if kind == "model":
        known = {m.name for m in suite.state.of_kind(Model)}
        if override and known and name not in known:
            fail(
                f"--target {override!r}: no Model named {name!r} in the suite's fleet; known: "
                f"{', '.join(sorted(known))} (or agent:NAME, skill:NAME@VERSION, pipeline:NAME)"
            )
        group, own = _prices(suite, name)
        return ChatTarget(client, name, spec.system, spec.temperature, spec.max_tokens, group, own)
    if kind == "agent":
        return AgentTarget(client, name)
    if kind in ("skill", "pipeline"):
        factory = TARGET_RUNNERS.get(kind)
        if factory is None or env is None:
            fail(
                f"cannot run {kind} targets: no {kind} runner is registered; "
                "use --target model:NAME or agent:NAME"
            )
        try:
            return CallableTarget(f"{kind}:{name}", factory(env, name))
        except TargetNameError as exc:
            fail(str(exc))
    fail(
        f"--target {override!r}: unknown kind {kind!r}; "
        "expected model:NAME, agent:NAME, skill:NAME@VERSION or pipeline:NAME"
    )


async def preflight(target: Target) -> None:
    """A runner that can tell a target does not exist (`run.check`) says so before the first case, so a
    wrong name is one line and exit 2, not a stored run of failed cases."""
    check = getattr(getattr(target, "run", None), "check", None)
    if check is not None:
        try:
            await check()
        except TargetNameError as exc:
            fail(str(exc))
