"""`fleetplane skill outdated`: newer published versions a lock could move to, dependabot-like.

For every pinned skill: the published versions newer than the pin that still satisfy its constraint,
each with its eval delta against the pinned version (from the scores recorded when each was evaluated;
None when either was never evaluated) and what it may do that the pinned version may not — a new tool,
a tool whose approval was loosened, effects that reach further (pure < read < write < external), a
write that stopped being idempotent or at-most-once, another model group.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetplane.skills.contract import APPROVALS, Contract
from fleetplane.skills.lock import SkillLock
from fleetplane.skills.registry import PublishedVersion, SkillRegistry
from fleetplane.skills.semver import Constraint, Version


@dataclass(frozen=True)
class Update:
    name: str
    constraint: str
    pinned: str
    version: str
    digest: str
    eval_delta: float | None
    new_permissions: tuple[str, ...]
    serving: bool  # the version the registry serves now


def new_permissions(old: Contract, new: Contract) -> tuple[str, ...]:
    found: list[str] = []
    before = {t.name: t for t in old.tools}
    for tool in new.tools:
        was = before.get(tool.name)
        if was is None:
            found.append(f"new tool {tool.name} (approval: {tool.approval})")
        elif _looser(was.approval, tool.approval):
            found.append(f"tool {tool.name}: approval {was.approval} -> {tool.approval}")
        elif was.approval == tool.approval == "when" and was.when != tool.when:
            found.append(f"tool {tool.name}: approval rule {was.when!r} -> {tool.when!r}")
    if new.effects.rank > old.effects.rank:
        found.append(f"effects {old.effects.kind} -> {new.effects.kind}")
    if old.effects.at_most_once and not new.effects.at_most_once:
        found.append("no longer at-most-once")
    if old.effects.idempotent and not new.effects.idempotent and new.effects.rank >= 2:
        found.append("no longer idempotent")
    if new.model != old.model and new.model is not None:
        found.append(f"model {old.model or '(none)'} -> {new.model}")
    return tuple(found)


def _looser(old: str, new: str) -> bool:
    # never < when < always: moving left asks a person less often.
    order = {"never": 0, "when": 1, "always": 2}
    assert set(order) == set(APPROVALS)
    return order[new] < order[old]


async def outdated(registry: SkillRegistry, lock: SkillLock) -> list[Update]:
    updates: list[Update] = []
    channels = await registry.channels()
    for name, entry in sorted(lock.entries.items()):
        constraint = Constraint.parse(entry.constraint)
        published = await registry.versions(name)
        pinned = next((p for p in published if p.version == entry.ref.version), None)
        pinned_version = Version.parse(entry.ref.version)
        for candidate in sorted(published, key=lambda p: Version.parse(p.version)):
            version = Version.parse(candidate.version)
            if version <= pinned_version or not constraint.allows(version):
                continue
            channel = channels.get(name)
            updates.append(
                Update(
                    name,
                    entry.constraint,
                    entry.ref.version,
                    candidate.version,
                    candidate.ref.digest,
                    _delta(pinned, candidate),
                    new_permissions(pinned.contract, candidate.contract) if pinned else (),
                    channel is not None and channel.version == candidate.version,
                )
            )
    return updates


def _delta(pinned: PublishedVersion | None, candidate: PublishedVersion) -> float | None:
    if pinned is None or pinned.eval_score is None or candidate.eval_score is None:
        return None
    return round(candidate.eval_score - pinned.eval_score, 6)
