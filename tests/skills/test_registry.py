"""The registry end to end, on SQLite and on Postgres with the same results: publish (verified, content
addressed, idempotent), resolve and load (re-hashed), promote through the eval gate, canary by run id,
in-flight pins, rollback, the signing policy, and the audit entries each change leaves."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from skilltools import FIXTURES, version_of, write_trust

from fleetplane.skills import SkillCatalog, SkillContext, SkillError, SkillLock, SkillRegistry
from fleetplane.skills.archive import pack
from fleetplane.skills.catalog import canary_bucket
from fleetplane.skills.signing import load_private_key, sign_folder, write_keypair
from fleetplane.skills.trust import TrustPolicy
from fleetplane.state.clock import ManualClock
from fleetplane.store.audit import AuditLog
from fleetplane.store.db import Store

pytestmark = pytest.mark.anyio

RUNS = [f"run-{i}" for i in range(40)]


def ctx(run_id: str = "run-1") -> SkillContext:
    return SkillContext(run_id=run_id, step_id="s", attempt=1, idempotency_key=f"{run_id}:s")


async def refused(work: Any) -> str:
    with pytest.raises(SkillError) as caught:
        await work
    return f"{caught.value.kind}: {caught.value.message}"


async def scenario(store: Store, home: Path, tmp: Path) -> list[Any]:
    """Everything the registry does, as a list of observations that must be the same on every store."""
    seen: list[Any] = []
    clock = ManualClock()
    registry = SkillRegistry(store, home, clock=clock)
    catalog = SkillCatalog(store, home, clock=clock)
    v100 = await registry.publish(FIXTURES / "summarize", actor="ann")
    again = await registry.publish(FIXTURES / "summarize", actor="ann")
    seen.append(("publish", v100.version, again.ref == v100.ref, v100.files, v100.signer))

    # Before any promotion, the highest published version that fits serves.
    first = await catalog.resolve("summarize", "^1.0", run_id="run-0")
    seen.append(("resolve", first.version))
    seen.append(("promote", (await registry.promote("summarize", "1.0.0", actor="ann")).channel.version))

    # The known-bad fixture: refused by its own thresholds; the channel is left alone.
    await registry.publish(FIXTURES / "regressed" / "summarize", actor="bob")
    seen.append(await refused(registry.promote("summarize", "1.1.0", actor="bob")))
    # Above its threshold, but below the version it would replace.
    weaker = version_of(tmp, "summarize", "1.2.0", replace=('get("maxWords", 8)', 'get("maxWords", 7)'))
    await registry.publish(weaker, actor="bob")
    seen.append(await refused(registry.promote("summarize", "1.2.0", actor="bob")))
    seen.append(("serving", (await registry.channel("summarize")).version))  # type: ignore[union-attr]

    # A run that started now keeps its pin whatever is promoted next.
    pinned = await catalog.resolve("summarize", "^1", run_id="in-flight")
    good = version_of(tmp, "summarize", "1.3.0", replace=('" ".join(words)', '" ".join(words) + ""'))
    await registry.publish(good, actor="bob")
    canary = await registry.promote("summarize", "1.3.0", actor="bob", canary=30)
    seen.append(
        ("canary", canary.channel.version, canary.channel.canary_version, canary.channel.canary_percent)
    )
    got = {r: (await catalog.resolve("summarize", "^1", run_id=r)).version for r in RUNS}
    seen.append(
        all(v == ("1.3.0" if canary_bucket("summarize", r) < 30 else "1.0.0") for r, v in got.items())
    )
    seen.append(sorted(set(got.values())))
    full = await registry.promote("summarize", "1.3.0", actor="bob")
    seen.append(
        ("promoted", full.channel.version, full.channel.previous_version, full.channel.canary_version)
    )
    seen.append(("new run", (await catalog.resolve("summarize", "^1", run_id="later")).version))
    loaded = await catalog.load(pinned)
    seen.append(("in flight", loaded.ref.version, await loaded.invoke({"text": "a b c"}, ctx())))
    # A constraint the serving version does not satisfy gets the best that does; a lock pin wins.
    seen.append(("constraint", (await catalog.resolve("summarize", "~1.0")).version))
    seen.append(await refused(catalog.resolve("summarize", "~1.2")))
    lock = SkillLock.of({"summarize": ("^1", pinned)})
    seen.append(("locked", (await catalog.resolve("summarize", "^1", lock=lock)).version))
    seen.append(await refused(catalog.resolve("summarize", "^2", lock=lock)))
    seen.append(await refused(catalog.resolve("summarize", "^2")))

    back = await registry.rollback("summarize", actor="cat")
    seen.append(("rollback", back.version, back.previous_version))
    seen.append(await refused(registry.rollback("summarize", actor="cat")))
    seen.append([(h["action"], h["version"], h["from_version"]) for h in await registry.history("summarize")])
    entries = await AuditLog(store).entries()
    seen.append([(e.kind, e.subject, e.actor) for e in entries])
    seen.append((await AuditLog(store).verify()).ok)
    return seen


async def test_the_registry_gives_the_same_results_on_every_store(database_url: str, tmp_path: Path) -> None:
    store = await Store.open(database_url)
    try:
        seen = await scenario(store, tmp_path / "home", tmp_path / "work")
    finally:
        await store.close()
    assert seen == [
        ("publish", "1.0.0", True, 6, None),
        ("resolve", "1.0.0"),
        ("promote", "1.0.0"),
        "invalid: promotion refused by the eval gate: summarize@1.1.0 scores 0.62 on its eval suite, "
        "below its threshold 0.75 (failing: short, length)",
        "invalid: promotion refused by the eval gate: summarize@1.2.0 scores 0.88 on its eval suite, "
        "below 1.00 of summarize@1.0.0, which it would replace (failing: length)",
        ("serving", "1.0.0"),
        ("canary", "1.0.0", "1.3.0", 30),
        True,
        ["1.0.0", "1.3.0"],
        ("promoted", "1.3.0", "1.0.0", None),
        ("new run", "1.3.0"),
        ("in flight", "1.0.0", {"summary": "a b c", "words": 3}),
        ("constraint", "1.0.0"),
        "not_found: no promoted version of skill summarize satisfies '~1.2' (promoted: 1.3.0, 1.0.0; "
        "serving: 1.3.0)",
        ("locked", "1.0.0"),
        "invalid: the lock pins summarize@1.0.0, which does not satisfy '^2': update the lock "
        "(fleetplane skill lock)",
        "not_found: no promoted version of skill summarize satisfies '^2' (promoted: 1.3.0, 1.0.0; "
        "serving: 1.3.0)",
        ("rollback", "1.0.0", None),
        "invalid: summarize@1.0.0 has no earlier version to roll back to",
        [
            ("promote", "1.0.0", None),
            ("canary", "1.3.0", "1.0.0"),
            ("promote", "1.3.0", "1.0.0"),
            ("rollback", "1.0.0", "1.3.0"),
        ],
        [
            ("skill.publish", "summarize@1.0.0", "ann"),
            ("skill.promote", "summarize@1.0.0", "ann"),
            ("skill.publish", "summarize@1.1.0", "bob"),
            ("skill.promote.refused", "summarize@1.1.0", "bob"),
            ("skill.publish", "summarize@1.2.0", "bob"),
            ("skill.promote.refused", "summarize@1.2.0", "bob"),
            ("skill.publish", "summarize@1.3.0", "bob"),
            ("skill.promote", "summarize@1.3.0", "bob"),
            ("skill.promote", "summarize@1.3.0", "bob"),
            ("skill.rollback", "summarize@1.0.0", "cat"),
        ],
        True,
    ]


async def test_publishing_other_bytes_under_a_published_version(sqlite_url: str, tmp_path: Path) -> None:
    store = await Store.open(sqlite_url)
    try:
        registry = SkillRegistry(store, tmp_path / "home")
        first = await registry.publish(FIXTURES / "summarize", actor="ann")
        # A packed archive of the same folder is the same version: the same digest.
        (tmp_path / "summarize.tar.gz").write_bytes(pack(FIXTURES / "summarize"))
        assert (await registry.publish(tmp_path / "summarize.tar.gz", actor="ann")).ref == first.ref
        changed = version_of(tmp_path, "summarize", "1.0.0", replace=("[: input", "[:input"))
        message = await refused(registry.publish(changed, actor="ann"))
        assert message.startswith(
            f"invalid: summarize@1.0.0 is already published with digest {first.ref.digest}"
        )
        assert message.endswith(": publish a new version instead")
    finally:
        await store.close()


async def test_load_rehashes_the_stored_archive(sqlite_url: str, tmp_path: Path) -> None:
    store = await Store.open(sqlite_url)
    try:
        catalog = SkillCatalog(store, tmp_path / "home")
        published = await catalog.registry.publish(FIXTURES / "summarize", actor="ann")
        skill = await catalog.load(published.ref)
        assert skill.evals.threshold == 0.75
        blob = catalog.registry.blobs.path(published.ref.digest)
        blob.write_bytes(blob.read_bytes() + b"\0")
        message = await refused(catalog.load(published.ref))
        assert message.startswith(
            f"tampered: skill summarize@1.0.0: the archive {blob} does not match its digest "
            f"{published.ref.digest} (it hashes to sha256:"
        )
        blob.unlink()
        assert await refused(catalog.load(published.ref)) == (
            f"not_found: skill summarize@1.0.0: the archive {blob} is missing from the registry"
        )
    finally:
        await store.close()


async def test_the_signing_policy(sqlite_url: str, tmp_path: Path) -> None:
    store = await Store.open(sqlite_url)
    try:
        home = tmp_path / "home"
        unsigned_registry = SkillRegistry(store, home)
        unsigned = await unsigned_registry.publish(FIXTURES / "summarize", actor="ann")
        public = write_keypair(tmp_path / "release.pem")
        trust_file = write_trust(tmp_path / "trust.yaml", [("release", public, ["summarize"])])
        catalog = SkillCatalog(store, home, trust=trust_file)
        assert await catalog.registry.set_require_signed(True, actor="sec") is True
        assert await catalog.registry.set_require_signed(True, actor="sec") is False
        # Published before the policy: it no longer loads.
        assert await refused(catalog.load(unsigned.ref)) == (
            "unsigned: summarize@1.0.0 is not signed (no skill.dsse.json) and signing is required"
        )
        # Nothing serves yet: a canary needs a stable version first.
        assert await refused(catalog.registry.promote("summarize", "1.0.0", actor="ann", canary=10)) == (
            "invalid: summarize serves no version yet: promote one to all runs before a canary"
        )
        signed_folder = version_of(tmp_path, "summarize", "1.0.1")
        assert await refused(catalog.registry.publish(signed_folder, actor="ann")) == (
            "unsigned: summarize@1.0.1 is not signed (no skill.dsse.json) and signing is required"
        )
        sign_folder(signed_folder, load_private_key(tmp_path / "release.pem"))
        signed = await catalog.registry.publish(signed_folder, actor="ann")
        skill = await catalog.load(signed.ref)
        kid = TrustPolicy.load(trust_file).keys[0].id
        assert signed.signer == skill.signer == kid
        # The key is revoked after publish: the next load refuses, though the skill was cached.
        write_trust(trust_file, [("release", public, ["summarize"])], [kid])
        catalog.registry.trust = TrustPolicy.load(trust_file)
        assert await refused(catalog.load(signed.ref)) == (
            f"revoked: summarize@1.0.1: signed by key {kid}, revoked in {trust_file}: laptop stolen"
        )
        # The serving version's key is revoked: a fixed version may still replace it.
        await catalog.registry.set_require_signed(False, actor="sec")
        catalog.registry.trust = TrustPolicy.load(
            write_trust(trust_file, [("release", public, ["summarize"])])
        )
        await catalog.registry.promote("summarize", "1.0.1", actor="ann")
        write_trust(trust_file, [("release", public, ["summarize"])], [kid])
        catalog.registry.trust = TrustPolicy.load(trust_file)
        fixed = await catalog.registry.publish(version_of(tmp_path, "summarize", "1.0.2"), actor="ann")
        done = await catalog.registry.promote("summarize", "1.0.2", actor="ann")
        assert (done.channel.version, done.current) == (fixed.version, None)
        assert [(e.kind, e.details) for e in await AuditLog(store).entries(kind="skill.policy")] == [
            ("skill.policy", {"require_signed": True}),
            ("skill.policy", {"require_signed": False}),
        ]
    finally:
        await store.close()


async def test_hot_swap_under_load(sqlite_url: str, tmp_path: Path) -> None:
    """Runs in flight while a version is promoted and rolled back: each finishes on the version it
    resolved at its start, runs started after a flip get the new one, and none fails."""
    store = await Store.open(sqlite_url)
    try:
        catalog = SkillCatalog(store, tmp_path / "home")
        registry = catalog.registry
        await registry.publish(FIXTURES / "summarize", actor="ann")
        await registry.publish(version_of(tmp_path, "summarize", "1.3.0"), actor="ann")
        await registry.promote("summarize", "1.0.0", actor="ann")
        gate = asyncio.Event()
        resolved: list[str] = []
        all_resolved = {batch: asyncio.Event() for batch in "abc"}

        async def run(run_id: str) -> tuple[str, str]:
            ref = await catalog.resolve("summarize", "^1", run_id=run_id)  # the run pins at its start
            resolved.append(run_id)
            if sum(r[0] == run_id[0] for r in resolved) == 10:
                all_resolved[run_id[0]].set()
            await gate.wait()  # ... and is still running when the next flip happens
            skill = await catalog.load(ref)
            out = await skill.invoke({"text": f"run {run_id} text"}, ctx(run_id))
            assert out["words"] == 3
            return ref.version, skill.ref.version

        async def started(batch: str) -> list[asyncio.Task[tuple[str, str]]]:
            tasks = [asyncio.create_task(run(f"{batch}{i}")) for i in range(10)]
            await all_resolved[batch].wait()
            return tasks

        first = await started("a")
        await registry.promote("summarize", "1.3.0", actor="ann")
        second = await started("b")
        await registry.rollback("summarize", actor="ann")
        third = await started("c")
        gate.set()
        results = [await asyncio.gather(*batch) for batch in (first, second, third)]
        assert [sorted(set(r)) for r in results] == [
            [("1.0.0", "1.0.0")],
            [("1.3.0", "1.3.0")],
            [("1.0.0", "1.0.0")],
        ]
    finally:
        await store.close()
