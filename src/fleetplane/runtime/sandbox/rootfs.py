"""The minimal read-only root a sandbox sees when the agent brings no root filesystem of its own.

Not the host's whole `/`: the sandbox user owns nothing on the host, but inside a user namespace mapped
to the supervisor's uid it would pass owner checks on the supervisor's files (/etc/shadow, /root). So
only what a program needs to run is mounted: /usr and its compatibility links, a short list of /etc
files, the Python running fleetplane (its prefix and virtualenv) and fleetplane's own source.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import fleetplane

ETC_FILES = (
    "passwd", "group", "hosts", "nsswitch.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
    "ssl", "ca-certificates", "ca-certificates.conf", "localtime", "alternatives", "mime.types",
)  # fmt: skip
TOP_DIRS = ("usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32")


@dataclass(frozen=True)
class Bind:
    source: str
    dest: str
    symlink: bool = False  # dest is a symlink to `source` instead of a bind mount


def _python_dirs() -> list[str]:
    dirs = {sys.base_prefix, sys.prefix, str(Path(fleetplane.__file__).resolve().parent.parent)}
    return sorted(d for d in dirs if not d.startswith("/usr/") and d != "/usr")


# Mount points a sandbox covers with a tmpfs of its own after the host binds.
SANDBOX_TMPFS = ("/tmp", "/run")


def late_binds() -> list[Bind]:
    """The Python directories that live under a sandbox's own tmpfs (a virtualenv or checkout in /tmp, as
    on CI): bound again after that tmpfs is mounted, which would otherwise hide them."""
    return [
        Bind(d, d)
        for d in _python_dirs()
        if any(d == top or d.startswith(top + "/") for top in SANDBOX_TMPFS)
    ]


def host_binds() -> list[Bind]:
    binds: list[Bind] = []
    for top in TOP_DIRS:
        path = f"/{top}"
        if os.path.islink(path):
            binds.append(Bind(os.readlink(path), path, symlink=True))
        elif os.path.isdir(path):
            binds.append(Bind(path, path))
    for name in ETC_FILES:
        path = f"/etc/{name}"
        if os.path.exists(path):
            binds.append(Bind(path, path))
    binds.extend(Bind(d, d) for d in _python_dirs())
    return binds
