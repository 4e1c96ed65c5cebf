"""`fleetplane validate`, `apply` and `get` through typer's CliRunner: exit codes and what they print."""

# ruff: noqa: E501  (expected output lines stay whole, as they are printed)

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from fleetplane.cli import keys, manifests
from fleetplane.store.applied import AppliedRepository
from fleetplane.store.db import Store
from fleetplane.store.keys import KeyRecord, KeyRepository

FLEET = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {name: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {name: support}
spec: {organization: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata: {name: sim}
spec: {type: sim, sim: {config: sim.yaml}}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: chat}
spec:
  family: gpt
  contextWindow: 128000
  deployments:
    - {provider: sim, model: gpt-4o-mini}
"""
KEY = """\
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: triage}
spec: {team: support, agent: triage, models: [chat]}
"""
SECRET = re.compile(r"fp-[A-Za-z0-9_-]{40,}")

Invoke = Callable[..., Result]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding fleet/ (a valid fleet), so messages show relative paths."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables would wrap at 80 columns
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    (fleet / "fleet.yaml").write_text(FLEET)
    (fleet / "keys.yaml").write_text(KEY)
    (fleet / "sim.yaml").write_text("seed: 1\n")
    return tmp_path


@pytest.fixture
def cli(sqlite_url: str) -> Invoke:
    app = typer.Typer()
    manifests.register(app)
    keys.register(app)
    runner = CliRunner()

    def invoke(*args: str, db: str | None = sqlite_url) -> Result:
        extra = ["--database-url", db] if db and args[0] in ("apply", "get") else []
        return runner.invoke(app, [*args, *extra])

    return invoke


def generation(url: str) -> int:
    async def read() -> int:
        store = await Store.open(url)
        try:
            return await AppliedRepository(store).generation()
        finally:
            await store.close()

    return asyncio.run(read())


def key_by_secret(url: str, secret: str) -> KeyRecord | None:
    async def read() -> KeyRecord | None:
        store = await Store.open(url)
        try:
            return await KeyRepository(store).find_by_secret(secret)
        finally:
            await store.close()

    return asyncio.run(read())


def test_validate_a_good_directory(cli: Invoke, workdir: Path) -> None:
    result = cli("validate", "fleet")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "valid: 1 Organization, 1 Team, 1 Provider, 1 Model, 1 VirtualKey (5 documents in 2 files)\n"
        "skipped fleet/sim.yaml: not a manifest (no apiVersion or kind)\n"
    )


def test_validate_prints_every_error_grouped_by_file(cli: Invoke, workdir: Path) -> None:
    (workdir / "fleet" / "fleet.yaml").write_text(FLEET.replace("contextWindow: 128000", "contextWindow: -5"))
    (workdir / "fleet" / "keys.yaml").write_text(KEY.replace("team: support", "team: sales"))

    result = cli("validate", "fleet")

    assert result.exit_code == 1
    assert result.stdout == (
        "fleet/fleet.yaml:20:18: Model/chat: spec.contextWindow: found -5; expected a number greater than 0\n"
        "\n"
        "fleet/keys.yaml:4:14: VirtualKey/triage: spec.team: no Team named 'sales'; expected one of: support\n"
        "\n"
        "2 errors in 2 files\n"
    )


def test_validate_a_missing_path(cli: Invoke, workdir: Path) -> None:
    result = cli("validate", "nowhere")

    assert result.exit_code == 2
    assert result.stderr == "error: no such file or directory: nowhere\n"


def test_apply_shows_the_plan_and_the_minted_secret_once(cli: Invoke, workdir: Path, sqlite_url: str) -> None:
    result = cli("apply", "fleet")

    assert result.exit_code == 0, result.output
    out = result.stdout
    for ref in ("Organization/acme", "Team/support", "Provider/sim", "Model/chat", "VirtualKey/triage"):
        assert re.search(rf"│ create\s+│ {ref}\s+│ \w+\.yaml", out), ref
    assert "applied: generation 1 (create 5, update 0, unchanged 0, delete 0)" in out
    assert "New key secrets (shown once)" in out
    assert "These secrets will not be shown again: store them now." in out
    (secret,) = SECRET.findall(out)
    record = key_by_secret(sqlite_url, secret)
    assert record is not None and record.name == "triage" and record.source == "manifest"

    again = cli("apply", "fleet")

    assert again.exit_code == 0
    assert "no changes: generation 1 stays (create 0, update 0, unchanged 5, delete 0)" in again.stdout
    assert SECRET.search(again.stdout) is None and "shown once" not in again.stdout


def test_apply_an_update_prints_a_diff(cli: Invoke, workdir: Path) -> None:
    cli("apply", "fleet")
    (workdir / "fleet" / "fleet.yaml").write_text(
        FLEET.replace("contextWindow: 128000", "contextWindow: 64000")
    )

    result = cli("apply", "fleet")

    assert result.exit_code == 0
    assert re.search(
        r"│ update\s+│ Model/chat\s+│ fleet\.yaml\s+│ 1 field: spec\.contextWindow", result.stdout
    )
    lines = result.stdout.splitlines()
    for expected in ("--- applied/Model/chat", "+++ desired/Model/chat", "-  contextWindow: 128000"):
        assert expected in lines
    assert "+  contextWindow: 64000" in lines
    assert "applied: generation 2 (create 0, update 1, unchanged 4, delete 0)" in result.stdout


def test_apply_prunes_unless_told_not_to(cli: Invoke, workdir: Path, sqlite_url: str) -> None:
    cli("apply", "fleet")
    (workdir / "fleet" / "keys.yaml").unlink()

    kept = cli("apply", "fleet", "--no-prune")
    pruned = cli("apply", "fleet")

    assert re.search(r"│ keep\s+│ VirtualKey/triage", kept.stdout)
    assert "no changes: generation 1 stays" in kept.stdout
    assert re.search(r"│ delete\s+│ VirtualKey/triage", pruned.stdout)
    assert generation(sqlite_url) == 2


def test_apply_a_dry_run_writes_nothing(cli: Invoke, workdir: Path, sqlite_url: str) -> None:
    result = cli("apply", "fleet", "--dry-run")

    assert result.exit_code == 0
    assert "dry run: nothing was written (create 5, update 0, unchanged 0, delete 0)" in result.stdout
    assert SECRET.search(result.stdout) is None
    assert generation(sqlite_url) == 0


def test_one_bad_document_applies_nothing(cli: Invoke, workdir: Path, database_url: str) -> None:
    assert cli("apply", "fleet", db=database_url).exit_code == 0
    (workdir / "fleet" / "more.yaml").write_text(FLEET.split("---")[0].replace("name: acme}", "name: Acme}"))

    result = cli("apply", "fleet", db=database_url)

    assert result.exit_code == 1
    assert result.stdout.startswith("fleet/more.yaml:3:18: Organization/Acme: metadata.name: found 'Acme';")
    assert result.stdout.endswith("\n1 error in 1 file\n")
    assert "Plan" not in result.stdout
    assert generation(database_url) == 1


def test_apply_an_unreadable_secret_applies_nothing(cli: Invoke, workdir: Path, sqlite_url: str) -> None:
    (workdir / "fleet" / "keys.yaml").write_text(
        KEY.replace("models: [chat]", "models: [chat], secretRef: {env: FP_CLI_UNSET}")
    )

    result = cli("apply", "fleet")

    assert result.exit_code == 1
    assert result.stdout == (
        "error: fleet/keys.yaml: VirtualKey/triage: spec.secretRef: environment variable FP_CLI_UNSET is not set\n"
        "nothing was applied\n"
    )
    assert generation(sqlite_url) == 0


def test_apply_an_empty_directory_is_refused(cli: Invoke, workdir: Path) -> None:
    (workdir / "empty").mkdir()

    result = cli("apply", "empty")

    assert result.exit_code == 1
    assert result.stderr == "error: found no manifests under empty: nothing to apply\n"


def test_get_reads_what_is_applied(cli: Invoke, workdir: Path) -> None:
    cli("apply", "fleet")

    table = cli("get", "Models")
    as_json = cli("get", "model", "chat", "-o", "json")
    as_yaml = cli("get", "virtualkeys", "-o", "yaml")

    assert table.exit_code == 0
    assert re.search(
        r"│ chat\s+│ family=gpt deployments=sim/gpt-4o-mini\s+│ fleet\.yaml\s+│ 1 ", table.stdout
    )
    document = json.loads(as_json.stdout)
    assert (document["kind"], document["metadata"]["name"], document["spec"]["contextWindow"]) == (
        "Model",
        "chat",
        128000,
    )
    (key,) = list(yaml.safe_load_all(as_yaml.stdout))
    assert key["spec"] == {"team": "support", "agent": "triage", "models": ["chat"]}


def test_get_an_empty_kind_and_a_missing_name(cli: Invoke, workdir: Path) -> None:
    cli("apply", "fleet")

    empty = cli("get", "users")
    missing = cli("get", "team", "sales")

    assert (empty.exit_code, empty.stdout) == (0, "no User is applied\n")
    assert (missing.exit_code, missing.stderr) == (1, "error: Team/sales is not applied\n")


def test_get_an_unknown_kind_lists_the_known_ones(cli: Invoke, workdir: Path) -> None:
    result = cli("get", "widgets")

    assert result.exit_code == 2
    assert result.stderr == (
        "error: unknown kind 'widgets'; known kinds: Agent, Breaker, Customer, EvalSuite, Model, Organization, Pipeline, Provider, Quota, Team, User, VirtualKey\n"
    )


def test_a_bad_database_url_is_one_line(cli: Invoke, workdir: Path) -> None:
    result = cli("get", "models", db="mysql://localhost/x")

    assert result.exit_code == 2
    assert result.stderr == (
        "error: database 'mysql' is not supported: use sqlite:///PATH or postgresql://...\n"
    )


def test_help_describes_the_options(cli: Invoke) -> None:
    result = cli("apply", "--help", db=None)

    assert result.exit_code == 0
    for option in ("--dry-run", "--no-prune", "--database-url", "FLEETPLANE_DATABASE_URL"):
        assert option in result.stdout
