"""`SkillCatalog`: what a pipeline (or an agent) uses to find and run skills.

`resolve(name, constraint, run_id=, lock=)` answers which exact version a run gets: the version its lock
pins, if the lock names the skill (it must satisfy the constraint); else the version serving now — the
canary for the share of runs whose run id hashes into it — if it satisfies the constraint; else the
highest version ever promoted (so ever passed the eval gate) that does. A skill never promoted at all
resolves to its highest published version that fits (a development registry). A run resolves once, at
its start, and keeps the `SkillRef`: a promotion afterwards changes what new runs get, never what a
running one has (that is hot-swap without a restart: the channel is read from the store at every resolve).

`load(ref)` reads the archive by digest, re-hashes it and verifies it under the trust file and the signing
policy in force now (a key revoked after publish stops the skill at its next load), then caches the
loaded skill by digest; every later load of the same digest re-hashes the file again before reusing it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleetplane.skills.contract import SkillRef
from fleetplane.skills.errors import SkillError
from fleetplane.skills.loaded import LoadedSkill
from fleetplane.skills.lock import SkillLock
from fleetplane.skills.registry import SkillRegistry, label_of
from fleetplane.skills.semver import CONSTRAINT_EXPECTED, Constraint, Version
from fleetplane.skills.trust import TrustPolicy
from fleetplane.state.clock import SYSTEM_CLOCK, Clock
from fleetplane.store.db import Store

TRUST_ENV = "FLEETPLANE_SKILL_TRUST"


def canary_bucket(name: str, run_id: str) -> int:
    """0-99: which share of runs a run id falls in for this skill (the same run, the same bucket)."""
    return int(hashlib.sha256(f"{name}\0{run_id}".encode()).hexdigest()[:8], 16) % 100


def default_trust(home: Path) -> TrustPolicy | None:
    """The trust file named by `FLEETPLANE_SKILL_TRUST`, else `<home>/skills/trust.yaml` if there is one."""
    named = os.environ.get(TRUST_ENV)
    if named:
        return TrustPolicy.load(named)
    path = home / "skills" / "trust.yaml"
    return TrustPolicy.load(path) if path.is_file() else None


class SkillCatalog:
    def __init__(
        self,
        store: Store,
        home: Path | str | None = None,
        *,
        require_signed: bool = False,
        trust: TrustPolicy | Path | str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.registry = SkillRegistry(store, home, clock=clock)
        if trust is None:
            trust = default_trust(self.registry.home)
        self.registry.trust = (
            trust if isinstance(trust, TrustPolicy) or trust is None else TrustPolicy.load(trust)
        )
        self.require_signed = require_signed
        self._loaded: dict[str, LoadedSkill] = {}

    async def resolve(
        self, name: str, constraint: str = "*", *, run_id: str | None = None, lock: Any = None
    ) -> SkillRef:
        try:
            wanted = Constraint.parse(constraint)
        except ValueError:
            raise SkillError(
                "invalid", f"skill {name}: {constraint!r} is not {CONSTRAINT_EXPECTED}"
            ) from None
        pinned = SkillLock.pin_of(lock, name)
        if pinned is not None:
            if not wanted.allows(pinned.version):
                raise SkillError(
                    "invalid",
                    f"the lock pins {pinned.name}@{pinned.version}, which does not satisfy {constraint!r}: "
                    f"update the lock (fleetplane skill lock)",
                )
            return pinned
        channel = await self.registry.channel(name)
        published = await self.registry.versions(name)
        if channel is not None:
            serving = channel.version
            canary = channel.canary_version
            if canary and run_id is not None and canary_bucket(name, run_id) < channel.canary_percent:
                serving = canary
            if wanted.allows(serving):
                return (await self.registry.get(name, serving)).ref
            # Once a skill is served, only versions that passed the eval gate at some time qualify.
            promoted = {h["version"] for h in await self.registry.history(name) if h["action"] != "rollback"}
            published = [p for p in published if p.version in promoted]
        best = wanted.best(p.version for p in published)
        if best is None:
            have = ", ".join(p.version for p in published) or "none"
            if channel is not None:
                raise SkillError(
                    "not_found",
                    f"no promoted version of skill {name} satisfies {constraint!r} (promoted: {have}; "
                    f"serving: {channel.version})",
                )
            raise SkillError(
                "not_found",
                f"no published version of skill {name} satisfies {constraint!r} (published: {have})",
            )
        return next(p.ref for p in published if Version.parse(p.version) == best)

    async def load(self, ref: Any) -> LoadedSkill:
        skill_ref = ref if isinstance(ref, SkillRef) else SkillRef(ref.name, ref.version, ref.digest)
        cached = self._loaded.get(skill_ref.digest)
        required = self.require_signed or await self.registry.require_signed()
        if cached is not None and (cached.signer is not None or not required):
            # The bytes on disk are hashed again on every load, even when the parsed skill is reused.
            self.registry.blobs.get(skill_ref.digest, label_of(skill_ref))
            if self.registry.trust is not None:
                self._check_revocation(cached)
            return cached
        loaded = await self.registry.load(skill_ref, require_signed=required)
        self._loaded[skill_ref.digest] = loaded
        return loaded

    def _check_revocation(self, skill: LoadedSkill) -> None:
        trust = self.registry.trust
        assert trust is not None
        label = f"{skill.ref.name}@{skill.ref.version}"
        trust.check_digest(skill.ref.digest, label)
        if skill.signer is not None and skill.signer in trust.revoked_keys:
            raise SkillError(
                "revoked", f"{label}: signed by key {skill.signer}, revoked in {trust.source}: "
                f"{trust.revoked_keys[skill.signer]}"
            )  # fmt: skip

    async def lock(self, wanted: Mapping[str, str], *, previous: SkillLock | None = None) -> SkillLock:
        """A lock for `{name: constraint}`: what each resolves to now, keeping a previous pin that fits."""
        entries = {}
        for name, constraint in sorted(wanted.items()):
            ref = await self.resolve(
                name, constraint, lock=previous if previous and previous.fits(name, constraint) else None
            )
            entries[name] = (constraint, ref)
        return SkillLock.of(entries)
