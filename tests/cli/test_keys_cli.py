"""`fleetplane keys` through typer's CliRunner: secrets shown once, tenant paths, and every bad input."""

# ruff: noqa: E501  (expected output lines stay whole, as they are printed)

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from fleetplane.cli import keys, manifests
from fleetplane.store.db import Store
from fleetplane.store.keys import KeyRecord, KeyRepository

TENANCY = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {name: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {name: globex}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {name: support}
spec: {organization: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {name: research}
spec: {organization: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: User
metadata: {name: alice}
spec: {team: support}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Customer
metadata: {name: initech}
spec: {organization: globex}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata: {name: sim}
spec: {type: sim}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: chat}
spec:
  family: gpt
  contextWindow: 128000
  aliases: [fast]
  deployments:
    - {provider: sim, model: gpt-4o-mini}
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: gitops}
spec: {team: support, secretRef: {env: FP_GITOPS_KEY}}
"""
SECRET = re.compile(r"fp-[A-Za-z0-9_-]{40,}")

Invoke = Callable[..., Result]


@pytest.fixture
def cli(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """A CLI on a store where the tenancy above is applied."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("FP_GITOPS_KEY", "gitops-secret-0123456789")
    app = typer.Typer()
    manifests.register(app)
    keys.register(app)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, [*args, "--database-url", sqlite_url])

    (tmp_path / "fleet.yaml").write_text(TENANCY)
    assert invoke("apply", str(tmp_path / "fleet.yaml")).exit_code == 0
    return invoke


def stored(url: str) -> dict[str, KeyRecord]:
    async def read() -> dict[str, KeyRecord]:
        store = await Store.open(url)
        try:
            return {k.name: k for k in await KeyRepository(store).all()}
        finally:
            await store.close()

    return asyncio.run(read())


def find(url: str, secret: str) -> KeyRecord | None:
    async def read() -> KeyRecord | None:
        store = await Store.open(url)
        try:
            return await KeyRepository(store).find_by_secret(secret)
        finally:
            await store.close()

    return asyncio.run(read())


def test_create_prints_the_secret_once_and_the_tenant_path(cli: Invoke, sqlite_url: str) -> None:
    result = cli(
        "keys", "create", "--team", "support", "--user", "alice", "--agent", "triage", "--name", "k1"
    )

    assert result.exit_code == 0, result.output
    (secret,) = SECRET.findall(result.stdout)
    assert "Key 'k1' created" in result.stdout
    assert "tenant:  acme/support/user:alice/agent:triage" in result.stdout
    assert "This secret will not be shown again: store it now." in result.stdout
    record = find(sqlite_url, secret)
    assert record is not None
    assert (record.name, record.organization, record.source, record.models) == ("k1", "acme", "cli", ("*",))
    assert record.expires_at is None


def test_create_with_models_expiry_and_a_made_up_name(cli: Invoke, sqlite_url: str) -> None:
    result = cli("keys", "create", "--team", "research", "--models", "chat, fast,gpt-*", "--expires", "30d")

    assert result.exit_code == 0, result.output
    (name,) = [n for n in stored(sqlite_url) if n.startswith("research-")]
    assert re.fullmatch(r"research-[0-9a-f]{6}", name)
    record = stored(sqlite_url)[name]
    assert record.models == ("chat", "fast", "gpt-*")
    assert record.expires_at is not None and record.expires_at - record.created_at == 30 * 86400
    assert "note: the pattern 'gpt-*' matches no applied model yet" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--team", "sales"],
            "error: no Team named 'sales' is applied; apply it first with `fleetplane apply`",
        ),
        (
            ["--team", "support", "--user", "alice", "--customer", "initech"],
            "error: a key stands for a user or a customer, not both: give --user or --customer",
        ),
        (
            ["--team", "support", "--expires", "a month"],
            "error: --expires: 'a month' is not a duration; expected e.g. 30d, 12h, 90m or a number of seconds",
        ),
        (
            ["--team", "support", "--expires", "0s"],
            "error: --expires: '0s' is not a lifetime; expected a duration greater than 0",
        ),
        (
            ["--team", "support", "--agent", "Triage Bot"],
            "error: --agent: 'Triage Bot' is not a valid name; expected 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        ),
        (
            ["--team", "research", "--user", "alice"],
            "error: User/alice belongs to Team/support, not Team/research",
        ),
        (["--team", "support", "--user", "bob"], "error: no User named 'bob' is applied"),
        (
            ["--team", "support", "--customer", "initech"],
            "error: Customer/initech belongs to Organization/globex, but Team/support belongs to Organization/acme",
        ),
        (
            ["--team", "support", "--models", "chat,gpt5"],
            "error: --models: no Model or alias named 'gpt5' is applied",
        ),
        (
            ["--team", "support", "--models", " , "],
            "error: --models: give at least one model name or pattern, e.g. --models '*'",
        ),
        (
            ["--team", "support", "--name", "gitops"],
            "error: a key named 'gitops' already exists; choose another --name",
        ),
    ],
    ids=[
        "unknown team",
        "user and customer",
        "bad duration",
        "zero lifetime",
        "bad name",
        "user of another team",
        "unknown user",
        "customer of another organization",
        "unknown model",
        "no models",
        "name taken",
    ],
)
def test_create_refuses_bad_input_in_one_line(
    cli: Invoke, sqlite_url: str, args: list[str], message: str
) -> None:
    before = stored(sqlite_url)

    result = cli("keys", "create", *args)

    assert result.exit_code == 2
    assert result.stderr == message + "\n"
    assert result.stdout == ""
    assert stored(sqlite_url).keys() == before.keys()


def test_list_never_shows_secrets(cli: Invoke, sqlite_url: str) -> None:
    created = cli("keys", "create", "--team", "support", "--agent", "bot", "--name", "k2")
    (secret,) = SECRET.findall(created.stdout)

    result = cli("keys", "list")

    assert result.exit_code == 0
    assert secret not in result.stdout and "gitops-secret" not in result.stdout
    row = next(line for line in result.stdout.splitlines() if "│ k2 " in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[:5] == ["k2", secret[:10] + "...", "acme/support/agent:bot", "*", "cli"]
    assert cells[6:] == ["-", "-"]
    gitops = next(line for line in result.stdout.splitlines() if "│ gitops " in line)
    assert "manifest" in gitops


def test_revoke(cli: Invoke, sqlite_url: str) -> None:
    cli("keys", "create", "--team", "support", "--name", "k3")

    first = cli("keys", "revoke", "k3")
    second = cli("keys", "revoke", "k3")
    unknown = cli("keys", "revoke", "nope")

    assert (first.exit_code, first.stdout) == (0, "revoked key 'k3' (acme/support)\n")
    assert second.exit_code == 0 and second.stdout.startswith("key 'k3' was already revoked at ")
    assert (unknown.exit_code, unknown.stderr) == (2, "error: no key named 'nope'\n")
    assert stored(sqlite_url)["k3"].revoked_at is not None


def test_rotate_replaces_the_secret(cli: Invoke, sqlite_url: str) -> None:
    (old,) = SECRET.findall(cli("keys", "create", "--team", "support", "--name", "k4").stdout)

    result = cli("keys", "rotate", "k4")

    assert result.exit_code == 0
    (new,) = SECRET.findall(result.stdout)
    assert new != old
    assert "Key 'k4' rotated" in result.stdout
    assert find(sqlite_url, old) is None
    found = find(sqlite_url, new)
    assert found is not None and found.name == "k4"


def test_rotate_a_revoked_key_makes_it_active_again(cli: Invoke, sqlite_url: str) -> None:
    cli("keys", "create", "--team", "support", "--name", "k5")
    cli("keys", "revoke", "k5")

    result = cli("keys", "rotate", "k5")

    assert result.exit_code == 0
    assert "It was revoked; with the new secret it is active again." in result.stdout
    assert stored(sqlite_url)["k5"].revoked_at is None


def test_rotate_refuses_a_key_whose_secret_comes_from_a_manifest(cli: Invoke) -> None:
    result = cli("keys", "rotate", "gitops")

    assert result.exit_code == 2
    assert result.stderr == (
        "error: key 'gitops' takes its secret from the secretRef of VirtualKey/gitops: change the secret there and run `fleetplane apply`\n"
    )


def test_rotate_an_unknown_key(cli: Invoke) -> None:
    result = cli("keys", "rotate", "nope")

    assert (result.exit_code, result.stderr) == (2, "error: no key named 'nope'\n")


def test_help() -> None:
    app = typer.Typer()
    keys.register(app)
    manifests.register(app)

    result = CliRunner().invoke(app, ["keys", "create", "--help"])

    assert result.exit_code == 0
    for option in (
        "--team",
        "--user",
        "--customer",
        "--agent",
        "--models",
        "--name",
        "--expires",
        "--database-url",
    ):
        assert option in result.stdout
