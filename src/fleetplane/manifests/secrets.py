"""Reading the secret a `SecretRef` points at: an environment variable, or a file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from fleetplane.manifests.fields import SecretRef


class SecretUnavailable(ValueError):
    """The reference is valid but its secret cannot be read here; the message says why."""


def read_secret(ref: SecretRef, *, base_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """The secret, without surrounding whitespace. A relative file is relative to `base_dir`."""
    if ref.env is not None:
        value = (os.environ if environ is None else environ).get(ref.env, "").strip()
        if not value:
            raise SecretUnavailable(f"environment variable {ref.env} is not set")
        return value
    path = base_dir / (ref.file or "")
    try:
        # A trailing newline is how editors and `echo` end a file, never part of the secret.
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SecretUnavailable(f"cannot read secret file {path}: {reason}") from exc
    if not value:
        raise SecretUnavailable(f"secret file {path} is empty")
    return value
