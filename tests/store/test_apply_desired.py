"""apply_desired on SQLite and Postgres: the manifests table, revisions, generations and virtual keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetplane.manifests.loader import load
from fleetplane.store.applied import AppliedRepository
from fleetplane.store.db import Store
from fleetplane.store.desired import ApplyError, apply_desired
from fleetplane.store.keys import KeyRepository, NewKey, hash_secret

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
ENV_SECRET = "env-secret-0123456789abcdef"
FILE_SECRET = "file-secret-0123456789abcdef"

TENANCY = """\
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
metadata: {name: openai}
spec: {type: openai-compatible, baseURL: "https://api.openai.com/v1"}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: chat}
spec:
  family: gpt
  contextWindow: 128000
  deployments:
    - {provider: openai, model: gpt-4o-mini}
"""

KEYS = """\
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: minted}
spec: {team: support, agent: triage}
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: from-env}
spec:
  team: support
  models: [chat]
  secretRef: {env: FP_TEST_KEY}
  expiresAt: 2030-01-01T00:00:00Z
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: from-file}
spec: {team: support, secretRef: {file: secrets/key.txt}}
"""


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "fleet"
    (root / "secrets").mkdir(parents=True)
    (root / "tenancy.yaml").write_text(TENANCY)
    (root / "keys.yaml").write_text(KEYS)
    (root / "secrets" / "key.txt").write_text(FILE_SECRET + "\n")
    monkeypatch.setenv("FP_TEST_KEY", ENV_SECRET)
    return root


async def test_first_apply_creates_everything_and_mints_missing_secrets(store: Store, fleet: Path) -> None:
    result = await apply_desired(store, load(fleet), now=T0)

    assert result.written and result.generation == 1
    assert result.plan.counts() == {"create": 7, "update": 0, "unchanged": 0, "delete": 0}
    applied = await AppliedRepository(store).all()
    assert applied[("Model", "chat")].source == "tenancy.yaml"
    assert applied[("VirtualKey", "minted")].generation == 1

    (minted,) = result.minted
    assert minted.key == "minted"
    keys = KeyRepository(store)
    by_minted = await keys.find_by_secret(minted.secret)
    by_env = await keys.find_by_secret(ENV_SECRET)
    by_file = await keys.find_by_secret(FILE_SECRET)
    assert by_minted is not None and by_env is not None and by_file is not None
    assert (by_minted.name, by_env.name, by_file.name) == ("minted", "from-env", "from-file")
    assert (by_minted.organization, by_minted.team, by_minted.agent) == ("acme", "support", "triage")
    assert by_minted.models == ("*",) and by_env.models == ("chat",)
    assert {k.source for k in (by_minted, by_env, by_file)} == {"manifest"}
    assert by_env.expires_at == datetime(2030, 1, 1, tzinfo=UTC).timestamp()


async def test_reapplying_the_same_directory_is_a_no_op(store: Store, fleet: Path) -> None:
    await apply_desired(store, load(fleet), now=T0)
    hashes = {k.name: k.key_hash for k in await KeyRepository(store).all()}

    again = await apply_desired(store, load(fleet), now=T0 + 60)

    assert not again.written and again.generation == 1 and again.minted == ()
    assert {c.action for c in again.plan.changes} == {"unchanged"}
    assert await AppliedRepository(store).generation() == 1
    assert {k.name: k.key_hash for k in await KeyRepository(store).all()} == hashes
    assert len(await AppliedRepository(store).revisions("Model", "chat")) == 1


async def test_an_update_is_diffed_recorded_and_keeps_key_secrets(store: Store, fleet: Path) -> None:
    await apply_desired(store, load(fleet), now=T0)
    (fleet / "tenancy.yaml").write_text(TENANCY.replace("contextWindow: 128000", "contextWindow: 64000"))
    (fleet / "keys.yaml").write_text(KEYS.replace("agent: triage", "agent: billing"))
    before = await KeyRepository(store).get("minted")

    result = await apply_desired(store, load(fleet), now=T0 + 60)

    assert result.generation == 2 and result.minted == ()
    updates = {c.ref: c for c in result.plan.of("update")}
    assert set(updates) == {"Model/chat", "VirtualKey/minted"}
    assert [(f.path, f.before, f.after) for f in updates["Model/chat"].fields] == [
        ("spec.contextWindow", 128000, 64000)
    ]
    revisions = await AppliedRepository(store).revisions("Model", "chat")
    assert [(r.generation, r.document["spec"]["contextWindow"]) for r in revisions] == [
        (1, 128000),
        (2, 64000),
    ]
    after = await KeyRepository(store).get("minted")
    assert before is not None and after is not None
    assert after.agent == "billing" and after.key_hash == before.key_hash


async def test_a_changed_secret_ref_replaces_the_secret(
    store: Store, fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await apply_desired(store, load(fleet), now=T0)
    monkeypatch.setenv("FP_TEST_KEY_2", "second-secret-0123456789")
    (fleet / "keys.yaml").write_text(KEYS.replace("FP_TEST_KEY", "FP_TEST_KEY_2"))

    await apply_desired(store, load(fleet), now=T0 + 60)

    keys = KeyRepository(store)
    assert await keys.find_by_secret(ENV_SECRET) is None
    renewed = await keys.find_by_secret("second-secret-0123456789")
    assert renewed is not None and renewed.name == "from-env"


async def test_documents_gone_from_the_directory_are_pruned(store: Store, fleet: Path) -> None:
    await apply_desired(store, load(fleet), now=T0)
    (fleet / "keys.yaml").unlink()

    result = await apply_desired(store, load(fleet), now=T0 + 60)

    assert [c.ref for c in result.plan.of("delete")] == [
        "VirtualKey/minted",
        "VirtualKey/from-file",
        "VirtualKey/from-env",
    ]
    assert [k.name for k in await KeyRepository(store).all()] == []
    assert ("VirtualKey", "minted") not in await AppliedRepository(store).all()
    history = await AppliedRepository(store).revisions("VirtualKey", "minted")
    assert [(r.generation, r.deleted) for r in history] == [(1, False), (2, True)]


async def test_without_prune_they_stay(store: Store, fleet: Path) -> None:
    await apply_desired(store, load(fleet), now=T0)
    (fleet / "keys.yaml").unlink()

    result = await apply_desired(store, load(fleet), now=T0 + 60, prune=False)

    assert not result.written and result.generation == 1
    assert result.plan.kept == ("VirtualKey/from-env", "VirtualKey/from-file", "VirtualKey/minted")
    assert len(await KeyRepository(store).all()) == 3
    assert len(await AppliedRepository(store).all()) == 7


async def test_a_dry_run_writes_nothing(store: Store, fleet: Path) -> None:
    result = await apply_desired(store, load(fleet), now=T0, dry_run=True)

    assert result.dry_run and not result.written and result.minted == ()
    assert len(result.plan.of("create")) == 7
    assert await AppliedRepository(store).generation() == 0
    assert await AppliedRepository(store).all() == {}
    assert await KeyRepository(store).all() == []


@pytest.mark.parametrize(
    ("keys_text", "problem"),
    [
        (
            KEYS.replace("FP_TEST_KEY", "FP_UNSET_VARIABLE"),
            "keys.yaml: VirtualKey/from-env: spec.secretRef: "
            "environment variable FP_UNSET_VARIABLE is not set",
        ),
        (
            KEYS.replace("secrets/key.txt", "secrets/missing.txt"),
            "keys.yaml: VirtualKey/from-file: spec.secretRef: cannot read secret file ",
        ),
    ],
    ids=["unset variable", "missing file"],
)
async def test_an_unreadable_secret_stops_the_apply_before_any_write(
    store: Store, fleet: Path, keys_text: str, problem: str
) -> None:
    (fleet / "keys.yaml").write_text(keys_text)

    with pytest.raises(ApplyError) as caught:
        await apply_desired(store, load(fleet), now=T0)

    (message,) = caught.value.problems
    assert message.startswith(str(fleet / problem))
    assert await AppliedRepository(store).generation() == 0
    assert await KeyRepository(store).all() == []


async def test_a_short_secret_is_refused(store: Store, fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FP_TEST_KEY", "short")

    with pytest.raises(ApplyError) as caught:
        await apply_desired(store, load(fleet), now=T0)

    assert caught.value.problems == [
        f"{fleet / 'keys.yaml'}: VirtualKey/from-env: spec.secretRef: the secret is 5 characters long; "
        "a key secret needs at least 20"
    ]
    assert await KeyRepository(store).all() == []


async def test_one_secret_for_two_keys_is_refused(
    store: Store, fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FP_TEST_KEY", FILE_SECRET)

    with pytest.raises(ApplyError) as caught:
        await apply_desired(store, load(fleet), now=T0)

    assert caught.value.problems == [
        "VirtualKey/from-file: its secret is also the secret of VirtualKey/from-env"
    ]


async def test_a_key_name_taken_by_a_cli_key_is_refused(store: Store, fleet: Path) -> None:
    keys = KeyRepository(store)
    await keys.create(NewKey("minted", "acme", "support", source="cli"), secret="x" * 30, now=T0)

    with pytest.raises(ApplyError) as caught:
        await apply_desired(store, load(fleet), now=T0)

    assert caught.value.problems[0].startswith("VirtualKey/minted: a key named 'minted' was made by")
    assert await AppliedRepository(store).generation() == 0
    assert [k.name for k in await keys.all()] == ["minted"]


async def test_a_row_left_by_a_failed_apply_is_adopted_with_a_fresh_secret(store: Store, fleet: Path) -> None:
    keys = KeyRepository(store)
    await keys.create(NewKey("minted", "old-org", "old-team", source="manifest"), secret="y" * 30, now=T0)

    result = await apply_desired(store, load(fleet), now=T0)

    (minted,) = result.minted
    record = await keys.get("minted")
    assert record is not None
    assert (record.organization, record.team, record.key_hash) == (
        "acme",
        "support",
        hash_secret(minted.secret),
    )
    assert await keys.find_by_secret("y" * 30) is None


async def test_a_secret_already_held_by_another_key_is_refused(store: Store, fleet: Path) -> None:
    await KeyRepository(store).create(NewKey("other", "acme", "support"), secret=ENV_SECRET, now=T0)

    with pytest.raises(ApplyError) as caught:
        await apply_desired(store, load(fleet), now=T0)

    assert caught.value.problems == ["VirtualKey/from-env: its secret is already the secret of key 'other'"]
    assert await AppliedRepository(store).generation() == 0
