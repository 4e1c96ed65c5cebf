"""Verifying an archive before anything in it is used: at publish, at every load and at promote.

In order, each failing closed with a message naming the skill and the file or key: the archive unpacks
safely; its folder passes `validate` (SKILL.md, skill.yaml, evals); the archive is not revoked by digest;
its signature (when present, and always when signing is required) covers exactly its files and was made
by a trusted, unrevoked key allowed to sign this skill's name.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from fleetplane.skills.archive import digest_of, pack, unpack
from fleetplane.skills.contract import SkillRef
from fleetplane.skills.errors import SkillError, SkillInvalid
from fleetplane.skills.folder import SkillFolder, read_folder
from fleetplane.skills.loaded import LoadedSkill
from fleetplane.skills.trust import TrustPolicy, verify_signature


@dataclass(frozen=True)
class VerifiedArchive:
    digest: str
    folder: SkillFolder  # read from a temporary copy; its path is gone once verified
    files: dict[str, bytes]
    signer: str | None  # the trusted key id that signed it; None when unsigned


def verify_archive(
    data: bytes, *, label: str, trust: TrustPolicy | None, require_signed: bool
) -> VerifiedArchive:
    digest = digest_of(data)
    unpacked = unpack(data, label)
    with tempfile.TemporaryDirectory(prefix="fleetplane-skill-") as tmp:
        try:
            folder = read_folder(unpacked.write(Path(tmp)))
        except SkillInvalid as exc:
            raise SkillError("invalid", f"{label}: {exc.message}") from None
    name = f"{folder.name}@{folder.version}"
    if trust is not None:
        trust.check_digest(digest, name)
    signer = verify_signature(unpacked.files, folder.name, folder.version, name, trust, require_signed)
    return VerifiedArchive(digest, folder, unpacked.files, signer)


def load_folder(path: Path, *, trust: TrustPolicy | None = None, require_signed: bool = False) -> LoadedSkill:
    """A skill straight from its working folder (packed and verified as publishing would), for
    `fleetplane skill test` and for tests: run it without a registry."""
    data = pack(read_folder(path).path)
    checked = verify_archive(data, label=str(path), trust=trust, require_signed=require_signed)
    folder = checked.folder
    ref = SkillRef(folder.name, folder.version, checked.digest)
    return LoadedSkill(ref, folder.contract, folder.entrypoint, checked.files, folder.evals, checked.signer)
