"""Per-replica logs: the agent's stdout and stderr as JSON lines with agent/replica/revision labels.

One file per replica (`replica.log_path(spec)`), appended across restarts, so `fleetplane logs AGENT`
reads every replica's file and merges by `ts`. A line that contains a secret's value has it replaced by
`[secret:NAME]`: secrets are delivered as files and never belong in a log. A file past `max_bytes` is
rotated once to `<file>.1` (the previous `.1` is dropped), so a chatty agent cannot fill the disk.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from fleetplane.state.clock import SYSTEM_CLOCK, Clock

MAX_LINE = 64 * 1024  # a longer line is split: one record per 64 KiB
MAX_BYTES = 32 * 2**20  # per replica file, before rotation


class LogWriter:
    def __init__(
        self,
        path: Path,
        labels: Mapping[str, str],
        *,
        secrets: Mapping[str, bytes] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._max_bytes = max_bytes
        self._labels = dict(labels)
        self._clock = clock
        # short values would redact ordinary words; a secret that short is not much of one anyway
        self._secrets = {
            name: value.decode(errors="replace") for name, value in (secrets or {}).items() if len(value) >= 4
        }
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._size = self._file.tell()

    def write(self, stream: str, line: str) -> None:
        for name, value in self._secrets.items():
            if value in line:
                line = line.replace(value, f"[secret:{name}]")
        record = {"ts": self._clock.now(), "stream": stream, "line": line, **self._labels}
        text = json.dumps(record, ensure_ascii=False) + "\n"
        if self._size + len(text) > self._max_bytes and self._size > 0:
            self._rotate()
        self._file.write(text)
        self._file.flush()
        self._size += len(text)

    def _rotate(self) -> None:
        self._file.close()
        self.path.replace(self.path.with_name(self.path.name + ".1"))
        self._file = self.path.open("a", encoding="utf-8")
        self._size = 0

    async def pump(self, stream: str, reader: asyncio.StreamReader) -> None:
        """Copy `reader` line by line until EOF."""
        pending = b""
        while chunk := await reader.read(MAX_LINE):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                for start in range(0, max(len(raw), 1), MAX_LINE):
                    self.write(stream, raw[start : start + MAX_LINE].decode(errors="replace").rstrip("\r"))
            while len(pending) >= MAX_LINE:
                self.write(stream, pending[:MAX_LINE].decode(errors="replace"))
                pending = pending[MAX_LINE:]
        if pending:
            self.write(stream, pending.decode(errors="replace"))

    def close(self) -> None:
        self._file.close()


def read_records(path: Path) -> Iterator[dict[str, object]]:
    """The records of one replica's log file, oldest first (a torn last line is skipped)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record
