"""The trust file: which public keys may sign which skills, and what has been revoked.

    keys:
      - name: release-ci
        key: "ed25519:q1Ycd1...="
        skills: ["support-*", summarize]      # fnmatch patterns of skill names this key may sign
    revoked:
      - key: 3f9a1c0d5e7b2a61                 # a key id (or the key itself): nothing it signed loads
        reason: laptop stolen 2026-11-02
      - digest: "sha256:9b0c..."              # one published archive
        reason: exfiltrates the input

Every check fails closed: an unknown key, a key signing outside its patterns, a revoked key or digest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleetplane.manifests.errors import ManifestError
from fleetplane.manifests.source import read_yaml
from fleetplane.skills.checks import Checker
from fleetplane.skills.errors import SkillError, SkillInvalid
from fleetplane.skills.folder import SIGNATURE_FILE
from fleetplane.skills.signing import Envelope, check_subjects, key_id, parse_public, read_envelope


@dataclass(frozen=True)
class TrustedKey:
    name: str
    key: Ed25519PublicKey
    skills: tuple[str, ...]

    @property
    def id(self) -> str:
        return key_id(self.key)

    def may_sign(self, skill: str) -> bool:
        return any(fnmatchcase(skill, pattern) for pattern in self.skills)


@dataclass(frozen=True)
class TrustPolicy:
    keys: tuple[TrustedKey, ...] = ()
    revoked_keys: Mapping[str, str] = field(default_factory=dict)  # key id -> reason
    revoked_digests: Mapping[str, str] = field(default_factory=dict)  # sha256:... -> reason
    source: str = "the trust policy"

    @classmethod
    def load(cls, path: Path | str) -> TrustPolicy:
        """The trust file at `path`; `SkillInvalid` with every problem at its line."""
        path = Path(path)
        display = str(path)
        if not path.is_file():
            raise SkillError("not_found", f"no trust file at {display}")
        documents, errors = read_yaml(path, display)
        problems: list[ManifestError] = list(errors)
        if not errors and (len(documents) != 1 or not isinstance(documents[0].data, dict)):
            problems.append(ManifestError(display, 1, 1, problem="a trust file is one mapping with keys:"))
        if problems:
            raise SkillInvalid(problems)
        check = Checker(documents[0], problems)
        check.mapping((), ("keys", "revoked"), required=("keys",))
        keys: list[TrustedKey] = []
        for i, _ in enumerate(check.items(("keys",))):
            at = ("keys", i)
            check.mapping(at, ("name", "key", "skills"), required=("name", "key", "skills"))
            name, text = check.string((*at, "name")), check.string((*at, "key"))
            patterns = check.strings((*at, "skills"))
            if check.has((*at, "skills")) and not patterns:
                check.add((*at, "skills"), expected="a non-empty list of skill name patterns")
            public = _public(check, (*at, "key"), text)
            if name and public is not None and patterns:
                keys.append(TrustedKey(name, public, tuple(patterns)))
        revoked_keys: dict[str, str] = {}
        revoked_digests: dict[str, str] = {}
        for i, _ in enumerate(check.items(("revoked",))):
            at = ("revoked", i)
            raw = check.mapping(at, ("key", "digest", "reason"), required=("reason",))
            reason = check.string((*at, "reason")) or ""
            if ("key" in raw) == ("digest" in raw):
                check.add(at, problem="give exactly one of key or digest", show=False)
            elif "key" in raw:
                text = check.string((*at, "key"))
                if text and len(text) == 16 and all(c in "0123456789abcdef" for c in text):
                    revoked_keys[text] = reason
                elif (public := _public(check, (*at, "key"), text)) is not None:
                    revoked_keys[key_id(public)] = reason
            else:
                digest = check.string((*at, "digest"))
                if digest and not (digest.startswith("sha256:") and len(digest) == 71):
                    check.add((*at, "digest"), expected="sha256:<64 hex digits>")
                elif digest:
                    revoked_digests[digest] = reason
        if problems:
            raise SkillInvalid(problems)
        return cls(tuple(keys), revoked_keys, revoked_digests, display)

    def key(self, kid: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.id == kid), None)

    def check_digest(self, digest: str, label: str) -> None:
        if digest in self.revoked_digests:
            reason = self.revoked_digests[digest]
            raise SkillError("revoked", f"{label}: archive {digest} is revoked in {self.source}: {reason}")


def _public(check: Checker, loc: tuple[str | int, ...], text: str | None) -> Ed25519PublicKey | None:
    if text is None:
        return None
    try:
        return parse_public(text)
    except ValueError as exc:
        check.add(loc, problem=str(exc), show=False)
        return None


def verify_signature(
    files: Mapping[str, bytes],
    name: str,
    version: str,
    label: str,
    trust: TrustPolicy | None,
    require_signed: bool,
) -> str | None:
    """Check a skill's signature against the policy; the verified signer's key id, or None when the skill
    is unsigned or no trust policy is given (then only the files are checked against the statement)."""
    envelope_bytes = files.get(SIGNATURE_FILE)
    if envelope_bytes is None:
        if require_signed:
            raise SkillError(
                "unsigned", f"{label} is not signed (no {SIGNATURE_FILE}) and signing is required"
            )
        return None
    if require_signed and trust is None:
        raise SkillError("untrusted", f"{label}: signing is required but no trust file is configured")
    envelope = read_envelope(envelope_bytes, f"{label}: {SIGNATURE_FILE}")
    signed = {path: data for path, data in files.items() if path != SIGNATURE_FILE}
    signer: str | None = None
    if trust is not None:
        signer = _trusted_signer(envelope, name, label, trust)
    check_subjects(envelope, signed, label)
    predicate = envelope.predicate
    if (predicate.get("name"), predicate.get("version")) != (name, version):
        raise SkillError(
            "tampered",
            f"{label}: {SIGNATURE_FILE} signs {predicate.get('name')}@{predicate.get('version')}, "
            f"not {name}@{version}",
        )
    return signer


def _trusted_signer(envelope: Envelope, name: str, label: str, trust: TrustPolicy) -> str:
    ids = [kid for kid, _ in envelope.signatures]
    for kid, signature in envelope.signatures:
        if kid in trust.revoked_keys:
            raise SkillError(
                "revoked",
                f"{label}: signed by key {kid}, revoked in {trust.source}: {trust.revoked_keys[kid]}",
            )
        trusted = trust.key(kid)
        if trusted is None:
            continue
        if not envelope.verifies(trusted.key, signature):
            raise SkillError(
                "tampered", f"{label}: the signature by key {kid} ({trusted.name}) does not verify: "
                f"{SIGNATURE_FILE} was altered"
            )  # fmt: skip
        if not trusted.may_sign(name):
            allowed = ", ".join(trusted.skills)
            raise SkillError(
                "untrusted",
                f"{label}: key {kid} ({trusted.name}) may not sign skill '{name}'; it may sign: {allowed}",
            )
        return kid
    shown = ", ".join(ids)
    raise SkillError("untrusted", f"{label}: signed by key {shown}, which {trust.source} does not list")


def check_can_add(path: Path, name: str) -> dict[str, Any]:
    """The trust file's data, if a key named `name` may be added to it; `SkillError` otherwise."""
    data: dict[str, Any] = {"keys": [], "revoked": []}
    if path.is_file():
        TrustPolicy.load(path)  # a broken file is reported, never silently replaced
        data = yaml.safe_load(path.read_text()) or data
    if any(k.get("name") == name for k in data.get("keys") or []):
        raise SkillError("invalid", f"{path} already lists a key named '{name}'")
    return data


def add_key(path: Path, name: str, public: str, skills: list[str]) -> None:
    """Add a key to the trust file at `path` (made if missing), refusing a name already listed. The file
    is rewritten from its data, so comments in it are not kept."""
    data = check_can_add(path, name)
    keys = data.setdefault("keys", [])
    keys.append({"name": name, "key": public, "skills": list(skills)})
    data.setdefault("revoked", [])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
