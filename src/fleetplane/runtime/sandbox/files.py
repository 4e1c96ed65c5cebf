"""Secret files for tiers that cannot mount from a file descriptor: a private directory on /dev/shm.

/dev/shm is a tmpfs, so secrets never touch a disk; the directory is 0700 and the files 0400, owned by
the uid the sandbox runs as, and removed with the replica.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetplane.runtime.replica import ReplicaSpec
from fleetplane.runtime.sandbox import ReplicaPaths

SHM = Path("/dev/shm")


def secrets_dir(paths_state: Path) -> Path:
    base = SHM if SHM.is_dir() else paths_state
    return base / f"fleetplane-secrets-{paths_state.name}"


def write_secret_files(spec: ReplicaSpec, paths: ReplicaPaths, *, uid: int) -> Path:
    target = secrets_dir(paths.state_dir)
    target.mkdir(mode=0o700, exist_ok=True)
    for name, value in spec.secrets.items():
        path = target / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
        try:
            os.write(fd, value)
        finally:
            os.close(fd)
        os.chown(path, uid, uid)
    os.chown(target, uid, uid)
    return target


def remove_secret_files(state_dir: Path) -> None:
    target = secrets_dir(state_dir)
    if target.is_dir():
        for child in target.iterdir():
            child.unlink()
        target.rmdir()
