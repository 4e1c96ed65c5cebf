"""The registry: published skill versions (rows in the store, archives under `$FLEETPLANE_HOME/skills/`),
what serves each skill, and the signing policy. Every change is written to the audit log.

- `publish` packs a folder (or takes a packed archive), verifies it (`verify.py`) under the trust file
  and the signing policy, stores the archive by digest and records the version. Publishing the same
  name@version again is a no-op when the bytes are the same and refused when they differ.
- `promote` verifies the version again, runs its eval suite and the serving version's through the eval
  gate, and flips the channel: all runs (`canary=None`) or a share of runs by run id hash (a canary).
  Nothing restarts: the catalog reads the channel at every resolve. `rollback` flips back.
- `set_require_signed` is the signing policy: once on, unsigned archives are refused at publish and load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from fleetplane.skills.archive import pack
from fleetplane.skills.blobs import BlobStore
from fleetplane.skills.channels import Channel, ChannelStore
from fleetplane.skills.contract import Contract, SkillRef, from_json, to_json
from fleetplane.skills.errors import SkillError
from fleetplane.skills.evalrun import ContextFactory, EvalReport, run_suite
from fleetplane.skills.folder import read_folder
from fleetplane.skills.gate import EvalGate, GateDecision, ThresholdGate
from fleetplane.skills.loaded import LoadedSkill
from fleetplane.skills.semver import Version
from fleetplane.skills.trust import TrustPolicy
from fleetplane.skills.verify import VerifiedArchive, verify_archive
from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.store.audit import AuditLog
from fleetplane.store.db import Store
from fleetplane.store.skill_tables import skill_settings, skill_versions
from fleetplane.store.url import home as default_home

REQUIRE_SIGNED = "require_signed"


@dataclass(frozen=True)
class PublishedVersion:
    ref: SkillRef
    contract: Contract
    size: int
    files: int
    signer: str | None
    eval_score: float | None
    eval_threshold: float | None
    published_at: float
    published_by: str

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def version(self) -> str:
        return self.ref.version


@dataclass(frozen=True)
class Promotion:
    channel: Channel
    decision: GateDecision
    candidate: EvalReport
    current: EvalReport | None


def _published(row: Any) -> PublishedVersion:
    m = row._mapping
    return PublishedVersion(
        SkillRef(m["name"], m["version"], m["digest"]),
        from_json(m["contract"]),
        m["size"],
        m["files"],
        m["signer"],
        m["eval_score"],
        m["eval_threshold"],
        m["published_at"],
        m["published_by"],
    )


def read_source(path: Path) -> bytes:
    """The archive of a skill folder (packed now) or a packed `.tar.gz`."""
    if path.is_dir():
        return pack(read_folder(path).path)
    if path.is_file():
        return path.read_bytes()
    raise SkillError("not_found", f"no skill folder or archive at {path}")


def label_of(ref: SkillRef) -> str:
    return f"skill {ref.name}@{ref.version}"


class SkillRegistry:
    def __init__(
        self,
        store: Store,
        home: Path | str | None = None,
        *,
        trust: TrustPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.home = Path(home) if home is not None else default_home()
        self.blobs = BlobStore(self.home / "skills")
        self.trust = trust
        self.clock = clock
        self.audit = AuditLog(store)
        self.serving = ChannelStore(store)

    # --- the signing policy ---------------------------------------------------------------------------

    async def require_signed(self) -> bool:
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(skill_settings.c.value).where(skill_settings.c.key == REQUIRE_SIGNED)
                )
            ).first()
        return bool(row.value) if row is not None else False

    async def set_require_signed(self, required: bool, *, actor: str) -> bool:
        """Set the policy; True when it changed (and was audited)."""
        if await self.require_signed() == required:
            return False
        now = self.clock.now()
        async with self.store.engine.begin() as conn:
            moved = await conn.execute(
                update(skill_settings)
                .where(skill_settings.c.key == REQUIRE_SIGNED)
                .values(value=required, updated_at=now, updated_by=actor)
            )
            if not moved.rowcount:
                await conn.execute(
                    skill_settings.insert().values(
                        key=REQUIRE_SIGNED, value=required, updated_at=now, updated_by=actor
                    )
                )
        await self.audit.append(
            "skill.policy", REQUIRE_SIGNED, actor=actor, details={"require_signed": required}, at=now
        )
        return True

    # --- publishing -----------------------------------------------------------------------------------

    def verify(self, data: bytes, label: str, require_signed: bool) -> VerifiedArchive:
        return verify_archive(data, label=label, trust=self.trust, require_signed=require_signed)

    async def publish(
        self, source: Path | str, *, actor: str, require_signed: bool = False
    ) -> PublishedVersion:
        """Verify and store a skill folder or a packed `.tar.gz`; the published version."""
        path = Path(source)
        data = read_source(path)
        required = require_signed or await self.require_signed()
        checked = self.verify(data, str(path), required)
        folder = checked.folder
        existing = await self.find(folder.name, folder.version)
        if existing is not None:
            if existing.ref.digest == checked.digest:
                return existing
            raise SkillError(
                "invalid",
                f"{folder.name}@{folder.version} is already published with digest {existing.ref.digest}; "
                f"this archive is {checked.digest}: publish a new version instead",
            )
        self.blobs.put(data)
        now = self.clock.now()
        values = {
            "name": folder.name,
            "version": folder.version,
            "digest": checked.digest,
            "size": len(data),
            "files": len(checked.files),
            "signer": checked.signer,
            "contract": to_json(folder.contract),
            "published_at": now,
            "published_by": actor,
        }
        try:
            async with self.store.engine.begin() as conn:
                await conn.execute(skill_versions.insert().values(**values))
        except IntegrityError:
            # Another publisher won the race for this name@version: the same bytes are fine.
            found = await self.find(folder.name, folder.version)
            if found is not None and found.ref.digest == checked.digest:
                return found
            raise SkillError(
                "invalid", f"{folder.name}@{folder.version} was just published by someone else"
            ) from None
        await self.audit.append(
            "skill.publish",
            f"{folder.name}@{folder.version}",
            actor=actor,
            details={"digest": checked.digest, "signer": checked.signer, "files": len(checked.files)},
            at=now,
        )
        published = await self.find(folder.name, folder.version)
        assert published is not None
        return published

    # --- reading --------------------------------------------------------------------------------------

    async def find(self, name: str, version: str) -> PublishedVersion | None:
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(skill_versions).where(
                        skill_versions.c.name == name, skill_versions.c.version == version
                    )
                )
            ).first()
        return _published(row) if row is not None else None

    async def get(self, name: str, version: str) -> PublishedVersion:
        found = await self.find(name, version)
        if found is None:
            known = [v.version for v in await self.versions(name)]
            also = f"; published: {', '.join(known)}" if known else "; no version of it is published"
            raise SkillError("not_found", f"skill {name}@{version} is not published{also}")
        return found

    async def versions(self, name: str | None = None) -> list[PublishedVersion]:
        """Published versions, by name and then newest first."""
        query = select(skill_versions)
        if name is not None:
            query = query.where(skill_versions.c.name == name)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        found = sorted((_published(r) for r in rows), key=lambda p: Version.parse(p.version), reverse=True)
        return sorted(found, key=lambda p: p.name)  # stable: newest first within each name

    async def channel(self, name: str) -> Channel | None:
        return await self.serving.read(name)

    async def channels(self) -> dict[str, Channel]:
        return await self.serving.all()

    async def history(self, name: str) -> list[dict[str, Any]]:
        return await self.serving.history(name)

    async def load(self, ref: SkillRef, *, require_signed: bool = False) -> LoadedSkill:
        """Read the archive back, re-hash it and verify it again, under the policy in force now."""
        required = require_signed or await self.require_signed()
        data = self.blobs.get(ref.digest, label_of(ref))
        checked = self.verify(data, label_of(ref), required)
        folder = checked.folder
        if (folder.name, folder.version) != (ref.name, ref.version):
            raise SkillError(
                "tampered", f"{label_of(ref)}: the archive {ref.digest} holds {folder.name}@{folder.version}"
            )
        return LoadedSkill(
            ref, folder.contract, folder.entrypoint, checked.files, folder.evals, checked.signer
        )

    # --- evals, promote, rollback ---------------------------------------------------------------------

    async def evaluate(self, skill: LoadedSkill, context: ContextFactory | None = None) -> EvalReport:
        """Run the version's own eval suite and record the score on its row."""
        report = await run_suite(skill, skill.evals, context)
        async with self.store.engine.begin() as conn:
            await conn.execute(
                update(skill_versions)
                .where(skill_versions.c.name == skill.ref.name, skill_versions.c.version == skill.ref.version)
                .values(
                    eval_score=report.score, eval_threshold=report.threshold, eval_report=report.to_json()
                )
            )
        return report

    async def promote(
        self,
        name: str,
        version: str,
        *,
        actor: str,
        canary: int | None = None,
        gate: EvalGate | None = None,
        context: ContextFactory | None = None,
    ) -> Promotion:
        """Make `version` serve all runs, or `canary` percent of them; refused by the eval gate or a failed
        verification with `SkillError` (the channel is left as it was)."""
        if canary is not None and not 1 <= canary <= 99:
            raise SkillError("invalid", f"a canary is 1 to 99 percent of runs, not {canary}")
        published = await self.get(name, version)
        current_channel = await self.channel(name)
        if current_channel is None and canary is not None:
            raise SkillError(
                "invalid", f"{name} serves no version yet: promote one to all runs before a canary"
            )
        candidate = await self.load(published.ref)  # verified again: the archive may have changed since
        current: EvalReport | None = None
        if current_channel is not None and current_channel.version != version:
            current = await self._evaluate_serving(name, current_channel.version, context)
        report = await self.evaluate(candidate, context)
        decision = await (gate or ThresholdGate())(report, current)
        if not decision.allowed:
            await self.audit.append(
                "skill.promote.refused",
                f"{name}@{version}",
                actor=actor,
                details={"reason": decision.reason, "score": report.score, "canary": canary},
                at=self.clock.now(),
            )
            raise SkillError("invalid", f"promotion refused by the eval gate: {decision.reason}")
        channel = await self._flip(published, current_channel, canary, decision.reason, actor)
        return Promotion(channel, decision, report, current)

    async def _evaluate_serving(
        self, name: str, version: str, context: ContextFactory | None
    ) -> EvalReport | None:
        """The serving version's eval report, or None when it no longer verifies (revoked, tampered): a
        version that may not run is no bar to the one replacing it."""
        serving = await self.get(name, version)
        try:
            skill = await self.load(serving.ref)
        except SkillError as exc:
            if exc.kind in ("tampered", "untrusted", "revoked", "unsigned", "not_found"):
                return None
            raise
        return await self.evaluate(skill, context)

    async def _flip(
        self, published: PublishedVersion, before: Channel | None, canary: int | None, reason: str, actor: str
    ) -> Channel:
        name, version, now = published.name, published.version, self.clock.now()
        from_version: str | None = before.version if before else None
        if canary is not None:
            values: dict[str, Any] = {"canary_version": version, "canary_percent": canary}
            action = "canary"
        else:
            # Promoting the serving version again (ending its canary) keeps the rollback target as it was.
            previous = before.previous_version if before and before.version == version else from_version
            values = {
                "version": version,
                "digest": published.ref.digest,
                "previous_version": previous,
                "canary_version": None,
                "canary_percent": 0,
            }
            action = "promote"
        await self.serving.write(name, before, values, now, actor)
        await self.serving.record(name, action, version, from_version, canary or 0, reason, now, actor)
        await self.audit.append(
            "skill.promote",
            f"{name}@{version}",
            actor=actor,
            details={
                "digest": published.ref.digest,
                "from": from_version,
                "canary": canary,
                "reason": reason,
            },
            at=now,
        )
        channel = await self.channel(name)
        assert channel is not None
        return channel

    async def rollback(self, name: str, *, actor: str, reason: str = "") -> Channel:
        """End a canary, or else serve the version before the last promotion again."""
        before = await self.channel(name)
        if before is None:
            raise SkillError("not_found", f"{name} serves no version: nothing to roll back")
        now = self.clock.now()
        if before.canary_version is not None:
            values: dict[str, Any] = {"canary_version": None, "canary_percent": 0}
            target, dropped = before.version, str(before.canary_version)
        elif before.previous_version is not None:
            previous = await self.get(name, before.previous_version)
            await self.load(previous.ref)  # the version rolled back to must still verify
            values = {"version": previous.version, "digest": previous.ref.digest, "previous_version": None}
            target, dropped = previous.version, before.version
        else:
            raise SkillError("invalid", f"{name}@{before.version} has no earlier version to roll back to")
        await self.serving.write(name, before, values, now, actor)
        why = reason or f"rolled back from {dropped}"
        await self.serving.record(name, "rollback", target, dropped, 0, why, now, actor)
        await self.audit.append(
            "skill.rollback",
            f"{name}@{target}",
            actor=actor,
            details={"from": dropped, "reason": why},
            at=now,
        )
        channel = await self.channel(name)
        assert channel is not None
        return channel
