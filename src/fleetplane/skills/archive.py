"""The packed form of a skill: a deterministic gzip'd tar whose sha256 is the skill's digest.

The same folder always packs to the same bytes, wherever and whenever it is packed: entries are sorted,
every file is `<name>/<path>` with mtime 1980-01-01, uid/gid 0, no owner names and mode 0644 (the
executable bit differs between checkouts and nothing in a skill is executed as a program), and gzip's own
header carries no time or file name. Unpacking is the
reverse, and refuses anything a folder could not have produced: links, devices, absolute paths, `..`,
more than one top-level folder, or sizes past the limits (a decompression bomb stops early).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fleetplane.skills.errors import SkillError
from fleetplane.skills.folder import list_files

MTIME = 315532800  # 1980-01-01T00:00:00Z: the earliest time every archive format can hold
MAX_FILES = 2000
MAX_BYTES = 64 * 1024 * 1024  # unpacked, all files together


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pack(folder: Path, name: str | None = None) -> bytes:
    """The archive of `folder` (its files as `list_files` lists them) under the top-level `name`."""
    top = name or folder.name
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in list_files(folder):
            path = folder / rel
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            info.mtime = MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    # mtime=0 and an empty file name keep gzip's header the same for the same content.
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


@dataclass(frozen=True)
class Unpacked:
    name: str  # the top-level folder
    files: dict[str, bytes]  # path relative to the folder -> content

    def write(self, parent: Path) -> Path:
        """Write the files under `parent/<name>/` and return that folder."""
        folder = parent / self.name
        for rel, data in self.files.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return folder


def unpack(data: bytes, label: str) -> Unpacked:
    """The files of an archive; `SkillError` (invalid) naming `label` and the entry for anything unsafe."""
    try:
        raw = gzip.GzipFile(fileobj=io.BytesIO(data)).read(MAX_BYTES + 1024 * 1024)
    except (OSError, EOFError) as exc:
        raise SkillError("invalid", f"{label}: not a gzip'd tar archive ({exc})") from None
    if len(raw) > MAX_BYTES + 1024 * 1024 - 1:
        raise SkillError("invalid", f"{label}: more than {MAX_BYTES} bytes unpacked")
    files: dict[str, bytes] = {}
    top: str | None = None
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if not member.isfile():
                    raise SkillError("invalid", f"{label}: entry {member.name!r} is not a regular file")
                if path.is_absolute() or ".." in path.parts or len(path.parts) < 2:
                    raise SkillError("invalid", f"{label}: entry {member.name!r} is outside the skill folder")
                if top is None:
                    top = path.parts[0]
                elif path.parts[0] != top:
                    raise SkillError(
                        "invalid", f"{label}: more than one top-level folder ({top}, {path.parts[0]})"
                    )
                total += member.size
                if total > MAX_BYTES or len(files) >= MAX_FILES:
                    raise SkillError("invalid", f"{label}: more than {MAX_FILES} files or {MAX_BYTES} bytes")
                extracted = tar.extractfile(member)
                rel = PurePosixPath(*path.parts[1:]).as_posix()
                if extracted is None or rel in files:
                    raise SkillError("invalid", f"{label}: entry {member.name!r} is unreadable or repeated")
                files[rel] = extracted.read()
    except tarfile.TarError as exc:
        raise SkillError("invalid", f"{label}: not a tar archive ({exc})") from None
    if top is None:
        raise SkillError("invalid", f"{label}: the archive is empty")
    return Unpacked(top, files)
