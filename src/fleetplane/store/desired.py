"""Apply a desired state to the store: the manifests table in one transaction, virtual keys kept in step.

Every key secret is read (and every conflict found) before anything is written, so a missing variable
or a clashing key name leaves the store as it was. Key rows are written before the manifests'
transaction: if that transaction then fails, a re-apply still sees the keys as to-create and adopts the
rows it finds, where the other order could leave an applied VirtualKey with no key behind it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC

from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.kinds import Team, VirtualKey
from fleetplane.manifests.plan import Change, Plan, plan
from fleetplane.manifests.secrets import SecretUnavailable, read_secret
from fleetplane.store.applied import AppliedRepository, Upsert
from fleetplane.store.db import Store
from fleetplane.store.keys import MIN_SECRET_LENGTH, KeyRecord, KeyRepository, NewKey, hash_secret, new_secret

MANIFEST_SOURCE = "manifest"


class ApplyError(Exception):
    """The plan cannot be carried out (a secret cannot be read, a key name is taken); nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class MintedSecret:
    """A key secret fleetplane made up: its only chance to be shown."""

    key: str
    secret: str


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    generation: int  # the store's generation afterwards (unchanged when nothing was written)
    written: bool
    dry_run: bool
    minted: tuple[MintedSecret, ...] = ()


@dataclass(frozen=True)
class _KeyStep:
    change: Change
    identity: NewKey | None  # None for a delete
    existing: KeyRecord | None
    secret: str | None  # read from secretRef; None keeps the current secret or mints one


async def apply_desired(
    store: Store, desired: DesiredState, *, now: float, prune: bool = True, dry_run: bool = False
) -> ApplyResult:
    manifests = AppliedRepository(store)
    keys = KeyRepository(store)
    the_plan = plan(desired, await manifests.all(), prune=prune)
    steps = await _key_steps(the_plan, desired, keys)
    if dry_run or not the_plan.has_changes:
        return ApplyResult(the_plan, await manifests.generation(), written=False, dry_run=dry_run)

    minted = [m for step in steps if (m := await _write_key(keys, step, now)) is not None]
    upserts = [
        Upsert(c.kind, c.name, c.document, c.digest, c.source)
        for c in the_plan.changes
        if c.action in ("create", "update") and c.document is not None
    ]
    deletes = [(c.kind, c.name) for c in the_plan.of("delete")]
    generation = await manifests.apply(upserts, deletes, now=now)
    return ApplyResult(the_plan, generation, written=True, dry_run=False, minted=tuple(minted))


async def _key_steps(the_plan: Plan, desired: DesiredState, keys: KeyRepository) -> list[_KeyStep]:
    steps: list[_KeyStep] = []
    problems: list[str] = []
    # One read of every key instead of one query per key: a fleet may hold thousands.
    stored = {k.name: k for k in await keys.all()}
    for change in the_plan.changes:
        if change.kind != VirtualKey.KIND or change.action == "unchanged":
            continue
        existing = stored.get(change.name)
        if change.action == "delete":
            if existing is not None and existing.source == MANIFEST_SOURCE:
                steps.append(_KeyStep(change, None, existing, None))
            continue
        if existing is not None and existing.source != MANIFEST_SOURCE:
            problems.append(
                f"{change.ref}: a key named '{change.name}' was made by `fleetplane keys create` "
                f"(source {existing.source}); give the VirtualKey another name"
            )
            continue
        manifest = desired.get(VirtualKey, change.name)
        if manifest is None:
            continue
        secret = None
        ref = manifest.spec.secret_ref
        if ref is not None and (change.action == "create" or existing is None or _secret_ref_changed(change)):
            try:
                secret = read_secret(ref, base_dir=desired.base_dir(manifest))
            except SecretUnavailable as exc:
                problems.append(f"{desired.origin(manifest).file}: {change.ref}: spec.secretRef: {exc}")
                continue
            if len(secret) < MIN_SECRET_LENGTH:
                problems.append(
                    f"{desired.origin(manifest).file}: {change.ref}: spec.secretRef: the secret is "
                    f"{len(secret)} characters long; a key secret needs at least {MIN_SECRET_LENGTH}"
                )
                continue
        steps.append(_KeyStep(change, _identity(manifest, desired), existing, secret))
    problems.extend(_clashing_secrets(steps, stored.values()))
    if problems:
        raise ApplyError(problems)
    return steps


def _clashing_secrets(steps: list[_KeyStep], stored: Iterable[KeyRecord]) -> list[str]:
    """Two keys with one secret could not be told apart by the gateway (and the store refuses it)."""
    problems: list[str] = []
    holders = {k.key_hash: k.name for k in stored}
    owner: dict[str, str] = {}
    for step in steps:
        if step.secret is None:
            continue
        name = step.change.name
        digest = hash_secret(step.secret)
        if digest in owner:
            problems.append(f"{step.change.ref}: its secret is also the secret of VirtualKey/{owner[digest]}")
            continue
        owner[digest] = name
        holder = holders.get(digest)
        if holder is not None and holder != name:
            problems.append(f"{step.change.ref}: its secret is already the secret of key '{holder}'")
    return problems


async def _write_key(keys: KeyRepository, step: _KeyStep, now: float) -> MintedSecret | None:
    name = step.change.name
    if step.identity is None:
        await keys.delete(name)
        return None
    if step.existing is None:
        secret = step.secret or new_secret()
        await keys.create(step.identity, secret=secret, now=now)
        return None if step.secret else MintedSecret(name, secret)
    await keys.update_identity(name, step.identity)
    if step.secret is not None:
        await keys.set_secret(name, step.secret, now=now)
    elif step.change.action == "create":
        # A row left by an apply that failed before its manifests were written: it gets a fresh
        # secret, because the one minted then was never shown.
        secret = new_secret()
        await keys.set_secret(name, secret, now=now)
        return MintedSecret(name, secret)
    return None


def _identity(key: VirtualKey, desired: DesiredState) -> NewKey:
    team = desired.get(Team, key.spec.team)
    if team is None:  # the loader refuses a key whose team is not in the directory
        raise ApplyError([f"{key.ref}: Team/{key.spec.team} is not in the desired state"])
    expires = key.spec.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)  # a time without a zone is read as UTC, as documented
    return NewKey(
        name=key.name,
        organization=team.spec.organization,
        team=key.spec.team,
        user=key.spec.user,
        customer=key.spec.customer,
        agent=key.spec.agent,
        models=tuple(key.spec.models),
        source=MANIFEST_SOURCE,
        expires_at=expires.timestamp() if expires is not None else None,
    )


def _secret_ref_changed(change: Change) -> bool:
    before = ((change.previous or {}).get("spec") or {}).get("secretRef")
    after = ((change.document or {}).get("spec") or {}).get("secretRef")
    return bool(before != after)
