"""Published archives as files, content-addressed: `<home>/skills/sha256/<hex>.tar.gz`.

A blob is written once (to a temporary name, then renamed, so a reader never sees half a file) and read
back by digest; the bytes are re-hashed on every read, so a file edited on disk is caught at load rather
than trusted because of its name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fleetplane.skills.archive import digest_of
from fleetplane.skills.errors import SkillError


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / f"{digest.removeprefix('sha256:')}.tar.gz"

    def put(self, data: bytes) -> str:
        digest = digest_of(data)
        target = self.path(digest)
        if target.is_file() and digest_of(target.read_bytes()) == digest:
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str, label: str) -> bytes:
        """The archive's bytes; `SkillError` not_found or tampered (naming the file) otherwise."""
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except OSError:
            raise SkillError(
                "not_found", f"{label}: the archive {path} is missing from the registry"
            ) from None
        found = digest_of(data)
        if found != digest:
            raise SkillError(
                "tampered",
                f"{label}: the archive {path} does not match its digest {digest} (it hashes to {found})",
            )
        return data
